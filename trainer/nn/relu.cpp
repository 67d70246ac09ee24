#include "trainer/nn/relu.h"

#include "trainer/core/error.h"

namespace rn {

const Tensor& ReLU::forward(const Tensor& x, Mode) {
  auto it = plans_.find(x.shape());
  if (it == plans_.end()) {
    Plan p;
    p.kernel = be_.make_relu(x.shape(), x.layout());
    p.y = be_.allocate(x.shape(), x.layout());
    p.dx = be_.allocate(x.shape(), x.layout());
    it = plans_.emplace(x.shape(), std::move(p)).first;
  }
  cur_ = &it->second;
  cur_->kernel->forward(x, cur_->y);
  return cur_->y;
}

const Tensor& ReLU::backward(const Tensor& dy) {
  RN_CHECK(cur_ != nullptr, "relu backward before forward");
  cur_->kernel->backward(cur_->y, dy, cur_->dx);
  return cur_->dx;
}

}  // namespace rn
