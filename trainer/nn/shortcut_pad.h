// Shortcut option A of the paper: identity with stride-s subsampling and
// zero channels appended (parameter-free), used by the CIFAR ResNets.
#pragma once

#include "trainer/nn/module.h"
#include "trainer/nn/shape_cache.h"

namespace rn {

class ShortcutPad : public Module {
 public:
  ShortcutPad(Backend& be, int64_t c_out, int64_t stride) : be_(be), c_out_(c_out), stride_(stride) {}
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  std::string kind() const override { return "pad-shortcut"; }

 private:
  struct Plan {
    Tensor y, dx;  // see Module::set_output_pool, set_grad_pool
  };
  Backend& be_;
  int64_t c_out_, stride_;
  ShapeCache<Plan> plans_;
  Plan* cur_ = nullptr;
  Tensor x_;  // input of the last forward
};

}  // namespace rn
