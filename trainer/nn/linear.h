// Fully connected layer with bias: y = x W^T + b, W of shape [out, in].
#pragma once

#include <memory>

#include "trainer/nn/module.h"
#include "trainer/nn/shape_cache.h"

namespace rn {

class Linear : public Module {
 public:
  // Declares <name>.weight [out, in] and <name>.bias [out].
  Linear(Backend& be, ParamStore& ps, const std::string& name, int64_t in, int64_t out);
  Shape output_shape(const Shape& in) const override { return Shape{in[0], out_}; }
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  int64_t macs(const Shape& in) const override { return in_ * out_; }
  std::string kind() const override { return "fc"; }
  Param& weight() { return *w_; }
  Param& bias() { return *b_; }

 private:
  struct Plan {
    std::unique_ptr<LinearKernel> kernel;
    Tensor y, dx;  // see Module::set_output_pool, set_grad_pool
  };
  Backend& be_;
  Param *w_, *b_;
  int64_t in_, out_;
  ShapeCache<Plan> plans_;
  Plan* cur_ = nullptr;
  Tensor x_;
};

}  // namespace rn
