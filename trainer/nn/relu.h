// Rectified linear unit, max(x, 0). Backward uses the output (y > 0).
#pragma once

#include <memory>

#include "trainer/nn/module.h"
#include "trainer/nn/shape_cache.h"

namespace rn {

class ReLU : public Module {
 public:
  explicit ReLU(Backend& be) : be_(be) {}
  Shape output_shape(const Shape& in) const override { return in; }
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  std::string kind() const override { return "relu"; }

 private:
  struct Plan {
    std::unique_ptr<ReluKernel> kernel;
    Tensor y, dx;  // dx: see Module::set_grad_pool
  };
  Backend& be_;
  ShapeCache<Plan> plans_;
  Plan* cur_ = nullptr;
};

}  // namespace rn
