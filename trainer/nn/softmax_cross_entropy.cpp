#include "trainer/nn/softmax_cross_entropy.h"

namespace rn {

void SoftmaxCrossEntropy::forward_backward(const Tensor& logits, const int32_t* labels, float loss_scale) {
  dlogits_ = grads_.get(logits.shape(), [&] { return be_.allocate(logits.shape(), Layout::kNC); });
  be_.softmax_cross_entropy(logits, labels, smoothing_, dlogits_, loss_scale);
}

}  // namespace rn
