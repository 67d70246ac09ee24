#include "data/epoch_plan.h"

#include <algorithm>
#include <numeric>
#include <tuple>

#include "data/sample_rng.h"
#include "trainer/core/error.h"

namespace rn::data {

namespace {
// Keeps the permutation's generator apart from the per-sample generators,
// which use (seed, epoch, index) with index < dataset size.
constexpr uint64_t kOrderStream = ~uint64_t(0);
}  // namespace

std::pair<int64_t, int64_t> contiguous_share(int64_t n, int rank, int world) {
  const int64_t q = n / world, m = n % world;
  const int64_t begin = rank * q + std::min<int64_t>(rank, m);
  return {begin, begin + q + (rank < m ? 1 : 0)};
}

void shuffled_order(int64_t n, uint64_t seed, int64_t epoch, std::vector<int64_t>& out) {
  out.resize(size_t(n));
  std::iota(out.begin(), out.end(), int64_t(0));
  SampleRng rng(seed, uint64_t(epoch), kOrderStream);
  for (int64_t i = n - 1; i > 0; --i) std::swap(out[size_t(i)], out[size_t(rng.below(uint64_t(i) + 1))]);
}

EpochPlan::EpochPlan(const EpochPlanOptions& o) : o_(o) {
  RN_CHECK(o.batch_size >= 1 && o.world >= 1 && o.rank >= 0 && o.rank < o.world && o.dataset_size >= 0 && o.limit >= 0,
           "EpochPlan options");
  const int64_t n = o.limit > 0 ? std::min(o.limit, o.dataset_size) : o.dataset_size;
  size_ = n;
  if (o.train) {
    const int64_t global = int64_t(o.batch_size) * o.world;
    batches_ = n / global;
    used_ = batches_ * global;
  } else {
    used_ = n;
    std::tie(share_begin_, share_end_) = contiguous_share(n, o.rank, o.world);
    batches_ = (share_end_ - share_begin_ + o.batch_size - 1) / o.batch_size;
  }
}

void EpochPlan::set_epoch(int64_t epoch) {
  if (epoch == epoch_) return;
  epoch_ = epoch;
  if (o_.train) shuffled_order(o_.dataset_size, o_.seed, epoch, order_);
}

bool EpochPlan::has_batch(int64_t sample) const {
  if (o_.train) return sample >= 0 && sample + int64_t(o_.batch_size) * o_.world <= size_;
  return sample >= 0 && sample < share_end_ - share_begin_;
}

int64_t EpochPlan::batch_at(int64_t sample, int64_t* indices) const {
  RN_CHECK(has_batch(sample) && epoch_ >= 0, "EpochPlan::batch_at out of range");
  const int64_t bs = o_.batch_size;
  if (o_.train) {
    std::copy_n(order_.begin() + sample + int64_t(o_.rank) * bs, bs, indices);
    return bs;
  }
  const int64_t first = share_begin_ + sample, n = std::min(bs, share_end_ - first);
  std::iota(indices, indices + n, first);
  return n;
}

}  // namespace rn::data
