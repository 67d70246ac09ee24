// 2-D convolution without bias (ResNet convolutions are always followed by BN).
#pragma once

#include <memory>

#include "trainer/nn/module.h"
#include "trainer/nn/shape_cache.h"

namespace rn {

class Conv2d : public Module {
 public:
  // Declares `<name>.weight` of shape [c_out, c_in, k, k].
  // need_input_grad=false skips backward-data (the first layer's input is data).
  Conv2d(Backend& be, ParamStore& ps, const std::string& name, int64_t c_in, int64_t c_out, int64_t kernel,
         int64_t stride, int64_t pad, bool need_input_grad = true);
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  int64_t macs(const Shape& in) const override;
  std::string kind() const override { return "conv"; }
  Param& weight() { return *w_; }
  int64_t c_in() const { return c_in_; }
  int64_t c_out() const { return c_out_; }
  int64_t kernel() const { return k_; }

 private:
  struct Plan {
    std::unique_ptr<ConvKernel> kernel;
    Layout y_layout;
    Tensor y, dx;  // see Module::set_output_pool, set_grad_pool
  };
  Plan make_plan(const Tensor& x);

  Backend& be_;
  Param* w_;
  int64_t c_in_, c_out_, k_, stride_, pad_;
  bool need_dx_;
  ShapeCache<Plan> plans_;
  Plan* cur_ = nullptr;
  Tensor x_;  // input of the last forward
};

}  // namespace rn
