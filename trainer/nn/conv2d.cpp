#include "trainer/nn/conv2d.h"

#include "trainer/core/error.h"

namespace rn {

Conv2d::Conv2d(Backend& be, ParamStore& ps, const std::string& name, int64_t c_in, int64_t c_out, int64_t kernel,
               int64_t stride, int64_t pad, bool need_input_grad)
    : be_(be), c_in_(c_in), c_out_(c_out), k_(kernel), stride_(stride), pad_(pad), need_dx_(need_input_grad) {
  w_ = ps.declare_param(name + ".weight", Shape{c_out, c_in, kernel, kernel}, false);
}

Shape Conv2d::output_shape(const Shape& in) const {
  return Shape{in[0], c_out_, (in[2] + 2 * pad_ - k_) / stride_ + 1, (in[3] + 2 * pad_ - k_) / stride_ + 1};
}

int64_t Conv2d::macs(const Shape& in) const {
  const Shape out = output_shape(in);
  return c_out_ * out[2] * out[3] * c_in_ * k_ * k_;
}

Conv2d::Plan Conv2d::make_plan(const Tensor& x) {
  RN_CHECK(x.shape().rank() == 4 && x.shape()[1] == c_in_,
           w_->name + " expects " + std::to_string(c_in_) + " input channels, got " + x.shape().str());
  const ConvGeom g{x.shape()[0], c_in_, x.shape()[2], x.shape()[3], c_out_, k_, stride_, pad_};
  const Layout yl = be_.activation_layout(c_out_);
  Plan p;
  p.kernel = be_.make_conv(g, x.layout(), yl, need_dx_);
  p.y_layout = yl;
  return p;
}

const Tensor& Conv2d::forward(const Tensor& x, Mode) {
  cur_ = &plans_.get(x.shape(), [&] { return make_plan(x); });
  x_ = x;
  Tensor& y = output_tensor(be_, cur_->y, output_shape(x.shape()), cur_->y_layout, be_.activation_dtype());
  cur_->kernel->forward(x, w_->value, y);
  return y;
}

const Tensor& Conv2d::backward(const Tensor& dy) {
  RN_CHECK(cur_ != nullptr, "backward before forward in " + w_->name);
  cur_->kernel->backward_weights(x_, dy, w_->grad);
  if (need_dx_) cur_->kernel->backward_data(dy, w_->value, grad_like(be_, cur_->dx, x_));
  return cur_->dx;
}

}  // namespace rn
