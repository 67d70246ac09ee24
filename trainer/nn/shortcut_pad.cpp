#include "trainer/nn/shortcut_pad.h"

#include "trainer/core/error.h"

namespace rn {

Shape ShortcutPad::output_shape(const Shape& in) const {
  return Shape{in[0], c_out_, (in[2] + stride_ - 1) / stride_, (in[3] + stride_ - 1) / stride_};
}

const Tensor& ShortcutPad::forward(const Tensor& x, Mode) {
  auto it = plans_.find(x.shape());
  if (it == plans_.end()) {
    RN_CHECK(x.shape().rank() == 4 && x.shape()[1] <= c_out_, "pad shortcut input " + x.shape().str());
    Plan p;
    p.y = be_.allocate(output_shape(x.shape()), be_.activation_layout(c_out_));
    p.dx = be_.allocate(x.shape(), x.layout());
    it = plans_.emplace(x.shape(), std::move(p)).first;
  }
  cur_ = &it->second;
  be_.shortcut_pad_forward(x, cur_->y, stride_);
  return cur_->y;
}

const Tensor& ShortcutPad::backward(const Tensor& dy) {
  RN_CHECK(cur_ != nullptr, "shortcut backward before forward");
  be_.shortcut_pad_backward(dy, cur_->dx, stride_);
  return cur_->dx;
}

}  // namespace rn
