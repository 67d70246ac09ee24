#include "trainer/infer/jpeg_inference.h"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <memory>

namespace rn {

ImageBatchDecoder::ImageBatchDecoder(const data::AugmentOptions& o, int threads) {
  const int n = std::max(1, threads);
  inputs_.reserve(size_t(n));
  for (int i = 0; i < n; ++i) inputs_.push_back(std::make_unique<ImageInput>(o));
}

void ImageBatchDecoder::decode(const std::string* paths, int64_t n, float* out) {
  const int64_t per_image = floats();
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  // Files differ in size: dynamic scheduling keeps the threads busy.
#pragma omp parallel for schedule(dynamic, 1) num_threads(int(inputs_.size()))
  for (int64_t i = 0; i < n; ++i) {
    try {
      inputs_[size_t(omp_get_thread_num())]->load(paths[i], out + i * per_image);
    } catch (...) {
      errors[size_t(i)] = std::current_exception();  // exceptions must not leave an OpenMP region
    }
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

void run_jpeg_inference(CheckpointModel& model, const std::vector<std::string>& paths, int threads,
                        const std::function<void(size_t, const float*)>& on_logits) {
  for (const auto& p : paths) check_image_file(p);
  if (paths.empty()) return;
  ImageBatchDecoder decoder(model.preprocessing(), threads);
  const int64_t k = model.num_classes();
  model.run(
      int64_t(paths.size()), decoder.size(), decoder.size(),
      [&](int64_t first, int64_t count, float* host) { decoder.decode(paths.data() + first, count, host); },
      [&](int64_t first, int64_t count, const float* logits) {
        for (int64_t j = 0; j < count; ++j) on_logits(size_t(first + j), logits + j * k);
      });
}

}  // namespace rn
