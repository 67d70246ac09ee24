#include "trainer/train/evaluator.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "comm/communicator.h"
#include "trainer/core/error.h"

namespace rn {

Evaluator::Evaluator(Backend& be, int num_classes, int batch_size, int image_size)
    : be_(be),
      classes_(num_classes),
      batch_(batch_size),
      size_(image_size),
      inputs_(be.make_upload_ring(Shape{batch_size, 3, image_size, image_size})),
      labels_(size_t(batch_size)),
      logits_(size_t(batch_size) * num_classes),
      probs_(size_t(batch_size) * num_classes) {}

EvalResult Evaluator::run(ResNet& model, data::BatchStream& val, comm::Communicator* world,
                          std::vector<std::string>* warnings) {
  // loss sum, top-1 hits, top-5 hits, scored images, skipped images
  double sums[5] = {0, 0, 0, 0, 0};
  const int k = classes_;
  val.start({0, 0});
  const int64_t batches = val.batches_per_epoch();
  const data::Batch* batch = batches > 0 ? &val.next() : nullptr;
  const Tensor* input = batch ? &inputs_->upload(batch->view(0), batch->n) : nullptr;
  for (int64_t b = 0; b < batches; ++b) {
    // The batch goes back to the loader at the next fetch, which comes
    // before this batch is scored: what scoring needs is copied first.
    if (warnings) warnings->insert(warnings->end(), batch->warnings.begin(), batch->warnings.end());
    const int64_t n = batch->n;
    const int views = batch->views;
    RN_CHECK(n <= batch_,
             "validation batch of " + std::to_string(n) + " images for an evaluator of " + std::to_string(batch_));
    std::copy_n(batch->labels, n, labels_.begin());
    std::fill_n(probs_.begin(), n * k, 0.0);
    for (int v = 0; v < views; ++v) {
      const Tensor& logits = model.forward(*input, Mode::kEval);
      // Queue the next upload (this batch's next view, or the next batch's
      // first) before waiting for these logits, so that it overlaps them.
      if (v + 1 < views) {
        input = &inputs_->upload(batch->view(v + 1), n);
      } else if (b + 1 < batches) {
        inputs_->wait_for_host_reads();  // the fetch hands this batch's memory back
        batch = &val.next();
        input = &inputs_->upload(batch->view(0), batch->n);
      }
      be_.to_host(logits, logits_.data());
      for (int64_t i = 0; i < n; ++i) {  // softmax, accumulated over views
        const float* z = logits_.data() + i * k;
        const double zmax = *std::max_element(z, z + k);
        double sum = 0;
        for (int j = 0; j < k; ++j) sum += std::exp(double(z[j]) - zmax);
        for (int j = 0; j < k; ++j) probs_[size_t(i * k + j)] += std::exp(double(z[j]) - zmax) / sum;
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      const int32_t label = labels_[size_t(i)];
      if (label < 0) {
        sums[4] += 1;
        continue;
      }
      const double* p = probs_.data() + i * k;
      const double target = p[label];
      int above = 0;  // classes ranked above the label; ties go to the lower index, as in argmax
      for (int j = 0; j < k; ++j) above += p[j] > target || (p[j] == target && j < label);
      sums[0] -= std::log(std::max(target / views, 1e-300));
      sums[1] += above == 0;
      sums[2] += above < 5;
      sums[3] += 1;
    }
  }
  if (world && world->size() > 1) world->allreduce_sum(sums, 5, "validation metrics");
  EvalResult r;
  const double scored = std::max(sums[3], 1.0);
  r.loss = sums[0] / scored;
  r.top1 = sums[1] / scored;
  r.top5 = sums[2] / scored;
  r.images = int64_t(sums[3]);
  r.skipped = int64_t(sums[4]);
  return r;
}

}  // namespace rn
