// Batch normalisation (per channel over N, H, W) with its tail fused
// (BnTail: nothing, ReLU, or residual add + ReLU where the backend has it).
//
// Training uses batch statistics and updates the running averages PyTorch's
// way: running = (1 - momentum) * running + momentum * batch, with the
// unbiased variance. Eval uses the running statistics.
//
// Frozen (set_frozen(true)): training also normalises with the running
// statistics and leaves them (and num_batches_tracked) unchanged; gamma and
// beta still learn, with the exact gradient of
// y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta. For
// fine-tuning with small per-rank batches and for exact data-parallel
// equivalence tests (the output of an image does not depend on the batch).
#pragma once

#include <memory>

#include "trainer/nn/module.h"
#include "trainer/nn/shape_cache.h"

namespace rn {

class BatchNorm2d : public Module {
 public:
  // Declares <name>.weight (gamma), <name>.bias (beta) and the buffers
  // <name>.running_mean, <name>.running_var, <name>.num_batches_tracked.
  BatchNorm2d(Backend& be, ParamStore& ps, const std::string& name, int64_t channels, BnTail tail = BnTail::kNone,
              float eps = 1e-5f, float momentum = 0.1f);
  Shape output_shape(const Shape& in) const override { return in; }
  // Not for BnTail::kAddRelu (use forward_add).
  const Tensor& forward(const Tensor& x, Mode mode) override;
  // BnTail::kAddRelu: y = relu(bn(x) + z); z stays referenced until backward.
  const Tensor& forward_add(const Tensor& x, const Tensor& z, Mode mode);
  // dx; with BnTail::kAddRelu, dz() holds the residual input's gradient after
  // it (with a TensorPool, a second tensor from the pool for the caller to
  // release).
  const Tensor& backward(const Tensor& dy) override;
  const Tensor& dz() const { return cur_->dz; }
  std::string kind() const override {
    return tail_ == BnTail::kRelu ? "bn+relu" : tail_ == BnTail::kAddRelu ? "bn+add+relu" : "bn";
  }
  Param& gamma() { return *gamma_; }
  Param& beta() { return *beta_; }
  StateBuffer& running_mean() { return *rmean_; }
  StateBuffer& running_var() { return *rvar_; }
  // Must be called before the first forward (kernels are chosen then).
  void set_frozen(bool frozen);
  bool frozen() const { return frozen_; }

 private:
  struct Plan {
    std::unique_ptr<BatchNormKernel> kernel;
    Tensor y, dx, dz;  // dz: kAddRelu only; see Module::set_output_pool, set_grad_pool
  };
  Plan make_plan(const Tensor& x);
  const Tensor& run_forward(const Tensor& x, const Tensor* z, Mode mode);

  Backend& be_;
  Param *gamma_, *beta_;
  StateBuffer *rmean_, *rvar_, *nbt_;
  int64_t c_;
  BnTail tail_;
  bool frozen_ = false;
  float eps_, momentum_;
  Tensor mean_, var_;  // batch statistics of the last training forward
  Tensor one_;         // the constant 1, to count batches with axpby
  ShapeCache<Plan> plans_;
  Plan* cur_ = nullptr;
  Tensor x_;
  const Tensor* z_ = nullptr;
};

}  // namespace rn
