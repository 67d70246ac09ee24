// An evaluation BatchStream over images held in memory, for tests of the
// evaluator: `samples` images of S x S pixels with `views` views each
// (pseudo-random values in [-2, 2)) and labels i % classes, handed out in
// batches of `batch` as the HDF5 loader does (a shorter last batch when
// batch does not divide samples; images [views][n][3][S][S] per batch).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "data/batch_stream.h"

namespace rn::testing_util {

class FixedValStream final : public data::BatchStream {
 public:
  FixedValStream(int64_t samples, int64_t batch, int views, int image_size, int classes, uint64_t seed)
      : samples_(samples), batch_(batch), views_(views), size_(image_size), per_image_(3 * image_size * image_size) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    for (int64_t first = 0; first < samples; first += batch) {
      const int64_t n = std::min(batch, samples - first);
      Held h;
      h.images.resize(size_t(views * n * per_image_));
      for (auto& v : h.images) v = u(rng);
      for (int64_t i = 0; i < n; ++i) {
        h.labels.push_back(int32_t((first + i) % classes));
        h.indices.push_back(first + i);
      }
      held_.push_back(std::move(h));
    }
  }

  // View v of sample i: 3 x S x S floats.
  const float* image(int64_t i, int v) const {
    const Held& h = held_[size_t(i / batch_)];
    const int64_t n = int64_t(h.labels.size());
    return h.images.data() + (int64_t(v) * n + i % batch_) * per_image_;
  }
  int32_t label(int64_t i) const { return held_[size_t(i / batch_)].labels[size_t(i % batch_)]; }

  void pin_images(const data::HostPinner&) override {}  // pageable: uploads are synchronous
  int64_t batches_per_epoch() const override { return int64_t(held_.size()); }
  int64_t samples_per_epoch() const override { return samples_; }
  int64_t epoch_size() const override { return samples_; }
  int views() const override { return views_; }
  void start(data::DataCursor c) override { next_ = c.sample / batch_; }
  const data::Batch& next() override {
    const Held& h = held_[size_t(next_)];
    batch_out_.at = cursor();
    batch_out_.n = int64_t(h.labels.size());
    batch_out_.views = views_;
    batch_out_.image_size = size_;
    batch_out_.images = h.images.data();
    batch_out_.labels = h.labels.data();
    batch_out_.indices = h.indices.data();
    ++next_;
    return batch_out_;
  }
  data::DataCursor cursor() const override { return {0, next_ * batch_}; }

 private:
  struct Held {
    std::vector<float> images;
    std::vector<int32_t> labels;
    std::vector<int64_t> indices;
  };
  int64_t samples_, batch_;
  int views_, size_;
  int64_t per_image_;
  std::vector<Held> held_;
  int64_t next_ = 0;
  data::Batch batch_out_;
};

}  // namespace rn::testing_util
