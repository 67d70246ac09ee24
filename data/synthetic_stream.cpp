#include "data/synthetic_stream.h"

#include <algorithm>
#include <tuple>

#include "data/epoch_plan.h"
#include "data/train_progress.h"
#include "trainer/core/error.h"
#include "trainer/core/parallel_for.h"

namespace rn::data {

SyntheticStream::SyntheticStream(const SyntheticStreamOptions& o)
    : o_(o), src_(o.source), global_(int64_t(o.batch_size) * o.world) {
  RN_CHECK(o.batch_size >= 1 && o.world >= 1 && o.rank >= 0 && o.rank < o.world && o.samples >= 0,
           "SyntheticStream options");
  if (o.train) {
    epoch_size_ = std::max(o.samples, global_);
    batches_ = epoch_size_ / global_;
  } else {
    epoch_size_ = o.samples;
    std::tie(share_begin_, share_end_) = contiguous_share(o.samples, o.rank, o.world);
    batches_ = (share_end_ - share_begin_ + o.batch_size - 1) / o.batch_size;
  }
  host_.resize(o.batch_size, o.source.image_size);
  indices_.resize(size_t(o.batch_size));
  batch_.image_size = o.source.image_size;
  batch_.images = host_.images.data();
  batch_.labels = host_.labels.data();
  batch_.indices = indices_.data();
}

int64_t SyntheticStream::samples_per_epoch() const { return o_.train ? batches_ * global_ : o_.samples; }

void SyntheticStream::start(DataCursor c) {
  if (o_.train) {
    c = normalize_train_cursor(c, epoch_size_, global_);
    RN_CHECK(valid_train_cursor(c, epoch_size_, global_), "synthetic stream: cursor outside the epoch");
  } else {
    const int64_t share = share_end_ - share_begin_;
    RN_CHECK(c.epoch >= 0 && c.sample >= 0 && c.sample <= share && (c.sample % o_.batch_size == 0 || c.sample == share),
             "synthetic evaluation stream: cursor outside the share");
  }
  cursor_ = c;
}

void SyntheticStream::pin_images(const HostPinner& pin) {
  pinned_ = pin(host_.images.data(), host_.images.size() * sizeof(float));
}

const Batch& SyntheticStream::next() {
  int64_t first = 0, n = o_.batch_size;
  uint64_t stream = 0;
  if (o_.train) {
    first = cursor_.epoch * epoch_size_ + cursor_.sample + int64_t(o_.rank) * o_.batch_size;
  } else {
    RN_CHECK(cursor_.sample < share_end_ - share_begin_, "synthetic evaluation stream: next() after the last batch");
    first = share_begin_ + cursor_.sample;
    n = std::min<int64_t>(n, share_end_ - first);
    stream = 1;
  }
  parallel_for(n, [&](int64_t i) { src_.sample(stream, uint64_t(first + i), host_, i); });
  for (int64_t i = 0; i < n; ++i) indices_[size_t(i)] = first + i;
  batch_.at = cursor_;
  batch_.n = n;
  if (o_.train)
    cursor_ = advance_train(cursor_, epoch_size_, global_);
  else
    cursor_.sample += o_.batch_size;
  return batch_;
}

}  // namespace rn::data
