#include "trainer/train/grad_accumulator.h"

#include <fmt/format.h>

#include "trainer/core/error.h"

namespace rn {

GradAccumulator::GradAccumulator(ResNet& model, int micro_batches)
    : model_(model),
      k_(micro_batches),
      sum_(model.backend().allocate(model.params().flat_grads().shape(), Layout::kNC)),
      next_(model.grad_ready_callback()) {
  RN_CHECK(k_ >= 2, fmt::format("gradient accumulation over {} micro-batch(es)", k_));
  model_.set_grad_ready_callback([this](size_t offset) { on_ready(offset); });
}

GradAccumulator::~GradAccumulator() { model_.set_grad_ready_callback(next_); }

void GradAccumulator::begin_micro_batch(int micro) {
  RN_CHECK(micro == (micro_ + 1) % k_, fmt::format("micro-batch {} after {} (of {})", micro, micro_, k_));
  micro_ = micro;
  final_from_ = size_t(model_.params().flat_size());
}

void GradAccumulator::end_micro_batch() {
  RN_CHECK(final_from_ == 0,
           fmt::format("backward of micro-batch {} left gradients below offset {} unreported", micro_, final_from_));
}

void GradAccumulator::on_ready(size_t offset) {
  if (offset < final_from_) {
    Backend& be = model_.backend();
    const Shape s{int64_t(final_from_ - offset)};
    Tensor g = model_.params().flat_grads().slice(offset, s, Layout::kNC);
    Tensor sum = sum_.slice(offset, s, Layout::kNC);
    if (micro_ == 0)
      be.copy(g, sum);
    else if (micro_ < k_ - 1)
      be.add(sum, g, sum);
    else
      be.add(g, sum, g);
    final_from_ = offset;
  }
  if (micro_ == k_ - 1 && next_) next_(offset);
}

}  // namespace rn
