#include "trainer/nn/relu.h"

#include "trainer/core/error.h"

namespace rn {

const Tensor& ReLU::forward(const Tensor& x, Mode) {
  cur_ = &plans_.get(x.shape(), [&] {
    return Plan{be_.make_relu(x.shape(), x.layout()), be_.allocate(x.shape(), x.layout(), x.dtype()), Tensor()};
  });
  cur_->kernel->forward(x, cur_->y);
  return cur_->y;
}

const Tensor& ReLU::backward(const Tensor& dy) {
  RN_CHECK(cur_ != nullptr, "relu backward before forward");
  cur_->kernel->backward(cur_->y, dy, grad_like(be_, cur_->dx, cur_->y));
  return cur_->dx;
}

}  // namespace rn
