#include "trainer/nn/linear.h"

#include "trainer/core/error.h"

namespace rn {

Linear::Linear(Backend& be, ParamStore& ps, const std::string& name, int64_t in, int64_t out)
    : be_(be), in_(in), out_(out) {
  w_ = ps.declare_param(name + ".weight", Shape{out, in}, false);
  b_ = ps.declare_param(name + ".bias", Shape{out}, true);
}

const Tensor& Linear::forward(const Tensor& x, Mode) {
  RN_CHECK(x.shape().rank() == 2 && x.shape()[1] == in_,
           w_->name + " expects [N, " + std::to_string(in_) + "], got " + x.shape().str());
  cur_ = &plans_.get(x.shape(), [&] { return Plan{be_.make_linear(x.shape()[0], in_, out_), Tensor(), Tensor()}; });
  x_ = x;
  Tensor& y = output_tensor(be_, cur_->y, Shape{x.shape()[0], out_}, Layout::kNC, DType::kF32);
  cur_->kernel->forward(x, w_->value, b_->value, y);
  return y;
}

const Tensor& Linear::backward(const Tensor& dy) {
  RN_CHECK(cur_ != nullptr, "backward before forward in " + w_->name);
  cur_->kernel->backward_weights(x_, dy, w_->grad, b_->grad);
  cur_->kernel->backward_data(dy, w_->value, grad_like(be_, cur_->dx, x_));
  return cur_->dx;
}

}  // namespace rn
