// Pooling: MaxPool2d (ResNet stem: 3x3, stride 2, pad 1) and GlobalAvgPool
// (N,C,H,W -> N,C in layout kNC, ready for the fully connected layer).
#pragma once

#include <memory>

#include "trainer/nn/module.h"
#include "trainer/nn/shape_cache.h"

namespace rn {

class Pool2d : public Module {
 public:
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  std::string kind() const override { return global_ ? "avgpool" : "maxpool"; }

 protected:
  Pool2d(Backend& be, PoolKind kind, int64_t kernel, int64_t stride, int64_t pad, bool global);

 private:
  struct Plan {
    std::unique_ptr<PoolKernel> kernel;
    Shape y_shape;
    Layout y_layout;
    DType y_dtype;
    // y_out: y as the module's output (kNC view when global); see
    // Module::set_output_pool, set_grad_pool.
    Tensor y, y_out, dx;
  };
  PoolGeom geom(const Shape& in) const;
  Backend& be_;
  PoolKind kind_;
  int64_t k_, stride_, pad_;
  bool global_;
  ShapeCache<Plan> plans_;
  Plan* cur_ = nullptr;
  Tensor x_;  // input of the last forward
};

class MaxPool2d : public Pool2d {
 public:
  MaxPool2d(Backend& be, int64_t kernel, int64_t stride, int64_t pad)
      : Pool2d(be, PoolKind::kMax, kernel, stride, pad, false) {}
};

class GlobalAvgPool : public Pool2d {
 public:
  explicit GlobalAvgPool(Backend& be) : Pool2d(be, PoolKind::kAvg, 0, 1, 0, true) {}
};

}  // namespace rn
