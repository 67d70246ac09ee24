// Gradient accumulation: one optimizer step over K micro-batches.
//
// Layers write (not add) their parameter gradients in backward, so the sum of
// a step's earlier micro-batches is kept in a second flat buffer the size of
// the model's gradients: micro-batch 0's gradients are copied there, later
// ones added. During the last micro-batch's backward every range of
// gradients that becomes final is added back into the model's gradients
// before the callback the model had (DataParallel's all-reduce) sees it, so
// gradient buckets still overlap with that backward. The result in the
// model's gradients is the SUM over the K micro-batches: the optimizer step
// divides by K.
//
// On a GPU the copies and additions are queued on the compute stream during
// backward, ahead of the event that releases a bucket to the all-reduce.
#pragma once

#include <cstddef>
#include <functional>

#include "trainer/core/tensor.h"
#include "trainer/model/resnet.h"

namespace rn {

class GradAccumulator {
 public:
  // Wraps `model`'s grad-ready callback: construct after DataParallel (which
  // installs it) and destroy before; restores it on destruction. The model
  // outlives this object. Allocates the accumulation buffer (flat_size fp32
  // on the model's backend) now; nothing per step. micro_batches >= 2.
  GradAccumulator(ResNet& model, int micro_batches);
  ~GradAccumulator();
  GradAccumulator(const GradAccumulator&) = delete;
  GradAccumulator& operator=(const GradAccumulator&) = delete;

  int micro_batches() const { return k_; }
  // Call before the backward of micro-batch `micro` (0 .. micro_batches-1,
  // in order) ...
  void begin_micro_batch(int micro);
  // ... and after it: checks that backward reported every gradient final.
  void end_micro_batch();

 private:
  void on_ready(size_t offset);

  ResNet& model_;
  int k_;
  Tensor sum_;  // the earlier micro-batches' gradient sum, flat like ParamStore::flat_grads
  std::function<void(size_t)> next_;
  int micro_ = -1;
  size_t final_from_ = 0;  // gradients at offsets >= this are final in this backward
};

}  // namespace rn
