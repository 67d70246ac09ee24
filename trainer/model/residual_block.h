// One residual block: basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1
// with 4x expansion; stride on the 3x3 as torchvision does), with the
// shortcut chosen by ShortcutType, and ReLU after the addition.
#pragma once

#include <memory>
#include <vector>

#include "trainer/model/arch.h"
#include "trainer/nn/batchnorm2d.h"
#include "trainer/nn/conv2d.h"
#include "trainer/nn/shape_cache.h"
#include "trainer/nn/shortcut_pad.h"

namespace rn {

class ResidualBlock : public Module {
 public:
  // prefix: torchvision name of the block, e.g. "layer2.0".
  ResidualBlock(Backend& be, ParamStore& ps, const std::string& prefix, BlockType type, int64_t c_in, int64_t planes,
                int64_t stride, ShortcutType shortcut);
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  // With a TensorPool, hands back every gradient it takes from the pool but
  // the one it returns; dy stays the caller's.
  const Tensor& backward(const Tensor& dy) override;
  void set_grad_pool(TensorPool* pool) override;
  // With a pool, every inner output comes from it: an eval forward hands
  // each back once read, a training forward keeps them until backward (see
  // ResNet::set_output_pool). The block's input and output stay the caller's.
  void set_output_pool(TensorPool* pool) override;
  int64_t macs(const Shape& in) const override;
  std::string kind() const override;
  int64_t c_out() const { return c_out_; }
  // The BN whose gamma zero-init-residual sets to 0 (the block's last BN).
  BatchNorm2d& last_bn() { return *bns_.back(); }
  bool has_projection() const { return proj_conv_ != nullptr; }
  // BatchNorm2d::set_frozen on every BN of the block (the downsample BN
  // included); before the first forward.
  void set_frozen_bn(bool frozen);

 private:
  struct Plan {
    Tensor dx;  // see Module::set_grad_pool
  };
  std::vector<Module*> parts() const;  // every module of the block
  // Hands a gradient back to the pool (no-op without one).
  void drop(const Tensor& t) {
    if (grad_pool_) grad_pool_->release(t);
  }
  // The same for an inner output of an inference-only forward.
  void done(const Tensor& t) {
    if (output_pool_) output_pool_->release(t);
  }
  Backend& be_;
  BlockType type_;
  int64_t c_out_;
  ShortcutType shortcut_;
  // Main path: convs_[i] then bns_[i], each BN with the ReLU fused; the
  // last one also adds the shortcut before its ReLU (BnTail::kAddRelu).
  std::vector<std::unique_ptr<Conv2d>> convs_;
  std::vector<std::unique_ptr<BatchNorm2d>> bns_;
  // Shortcut path, when the shape changes: projection (B) or pad (A).
  std::unique_ptr<Conv2d> proj_conv_;
  std::unique_ptr<BatchNorm2d> proj_bn_;
  std::unique_ptr<ShortcutPad> pad_;
  ShapeCache<Plan> plans_;
  Plan* cur_ = nullptr;
  // The inner outputs of the last forward; with an output pool and a
  // training forward (pending), held until backward hands them back.
  struct Kept {
    const Tensor* conv[3] = {nullptr, nullptr, nullptr};
    const Tensor* bn[3] = {nullptr, nullptr, nullptr};  // all but the last BN's (the block's output)
    const Tensor* proj = nullptr;                       // the projection conv's output
    const Tensor* shortcut = nullptr;                   // the shortcut's output (not x itself)
    bool pending = false;
  };
  Kept kept_;
};

}  // namespace rn
