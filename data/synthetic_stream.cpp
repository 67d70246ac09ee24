#include "data/synthetic_stream.h"

#include <algorithm>
#include <tuple>

#include "data/epoch_plan.h"
#include "trainer/core/error.h"

namespace rn::data {

SyntheticStream::SyntheticStream(const SyntheticStreamOptions& o) : o_(o), src_(o.source) {
  const int64_t global = int64_t(o.batch_size) * o.world;
  if (o.train) {
    batches_ = std::max<int64_t>(1, o.samples / global);
  } else {
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

int64_t SyntheticStream::samples_per_epoch() const {
  return o_.train ? batches_ * o_.batch_size * o_.world : o_.samples;
}

const Batch& SyntheticStream::next() {
  int64_t first = 0, n = o_.batch_size;
  uint64_t stream = 0;
  if (o_.train) {
    const int64_t step = cursor_.epoch * batches_ + cursor_.batch;
    first = (step * o_.world + o_.rank) * int64_t(o_.batch_size);
  } else {
    RN_CHECK(cursor_.batch < batches_, "synthetic evaluation stream: next() after the last batch");
    first = share_begin_ + cursor_.batch * o_.batch_size;
    n = std::min<int64_t>(n, share_end_ - first);
    stream = 1;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) src_.sample(stream, uint64_t(first + i), host_, i);
  for (int64_t i = 0; i < n; ++i) indices_[size_t(i)] = first + i;
  batch_.at = cursor_;
  batch_.n = n;
  if (++cursor_.batch == batches_ && o_.train) cursor_ = {cursor_.epoch + 1, 0};
  return batch_;
}

}  // namespace rn::data
