// Softmax cross-entropy loss with optional label smoothing (the loss head;
// not a Module because its input gradient starts backward).
#pragma once


#include "trainer/backend/backend.h"
#include "trainer/nn/shape_cache.h"

namespace rn {

class SoftmaxCrossEntropy {
 public:
  SoftmaxCrossEntropy(Backend& be, float label_smoothing = 0.f) : be_(be), smoothing_(label_smoothing) {}
  // logits [N, K] (kNC), labels: N host ints in [0, K) (or < 0: skipped).
  // Computes the mean loss, top-1 hits and loss_scale * d(loss)/d(logits)
  // (returned by grad(); loss_scale > 1 is fp16 loss scaling, see
  // trainer/optim/loss_scaler.h). On a GPU this only queues the work: grad()
  // may be used at once, the loss is read with result().
  void forward_backward(const Tensor& logits, const int32_t* labels, float loss_scale = 1.f);
  const Tensor& grad() const { return dlogits_; }
  // The last forward_backward's loss, top-1 hits and counted samples; waits
  // for them (Backend::loss_result).
  LossResult result() { return be_.loss_result(); }

 private:
  Backend& be_;
  float smoothing_;
  ShapeCache<Tensor> grads_;
  Tensor dlogits_;
};

}  // namespace rn
