#include "trainer/nn/softmax_cross_entropy.h"

namespace rn {

LossResult SoftmaxCrossEntropy::forward_backward(const Tensor& logits, const int32_t* labels) {
  auto it = grads_.find(logits.shape());
  if (it == grads_.end()) it = grads_.emplace(logits.shape(), be_.allocate(logits.shape(), Layout::kNC)).first;
  dlogits_ = it->second;
  return be_.softmax_cross_entropy(logits, labels, smoothing_, dlogits_);
}

}  // namespace rn
