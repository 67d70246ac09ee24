#include "trainer/nn/shortcut_pad.h"

#include "trainer/core/error.h"

namespace rn {

Shape ShortcutPad::output_shape(const Shape& in) const {
  return Shape{in[0], c_out_, (in[2] + stride_ - 1) / stride_, (in[3] + stride_ - 1) / stride_};
}

const Tensor& ShortcutPad::forward(const Tensor& x, Mode) {
  cur_ = &plans_.get(x.shape(), [&] {
    RN_CHECK(x.shape().rank() == 4 && x.shape()[1] <= c_out_, "pad shortcut input " + x.shape().str());
    return Plan{};
  });
  x_ = x;
  Tensor& y = output_tensor(be_, cur_->y, output_shape(x.shape()), be_.activation_layout(c_out_), x.dtype());
  be_.shortcut_pad_forward(x, y, stride_);
  return y;
}

const Tensor& ShortcutPad::backward(const Tensor& dy) {
  RN_CHECK(cur_ != nullptr, "shortcut backward before forward");
  be_.shortcut_pad_backward(dy, grad_like(be_, cur_->dx, x_), stride_);
  return cur_->dx;
}

}  // namespace rn
