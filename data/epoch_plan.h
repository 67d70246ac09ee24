// Which samples each rank gets in each epoch, as pure arithmetic (no I/O),
// so that every rank computes the same plan without communicating.
//
// Training (shuffle, drop_last): epoch e's order is a permutation of the
// dataset drawn from (seed, e). A step at position `sample` of that order
// (the cursor's sample, data/batch_stream.h) takes the next world x batch
// positions, and rank r takes positions [sample + r*batch, sample +
// (r+1)*batch) of them. Steps advance by world x batch (data/train_progress.h),
// so ranks are disjoint, every step is a full global batch, and the fewer
// than world x batch positions left at the end of the permutation wait for a
// later epoch (a different tail each epoch: nothing is dropped for good).
// Within an epoch no sample is seen twice, also when a run resumes there with
// another world or batch size: positions do not depend on either.
//
// Evaluation (no shuffle, no drop_last): the first `limit` samples are
// split into contiguous shares whose sizes differ by at most one; the union
// over ranks is every sample exactly once, with no padding duplicates. A
// rank's batch at `sample` is its share's [sample, sample + batch), cut at
// the share's end: its last batch may be smaller, and ranks may differ by
// one batch.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace rn::data {

struct EpochPlanOptions {
  int64_t dataset_size = 0;  // samples in the dataset
  int64_t limit = 0;         // use only the first `limit` samples (0: all); evaluation only
  int batch_size = 1;        // per rank
  int rank = 0, world = 1;
  bool train = true;  // shuffle + drop_last (training) or neither (evaluation)
  uint64_t seed = 1;
};

class EpochPlan {
 public:
  explicit EpochPlan(const EpochPlanOptions& o);

  const EpochPlanOptions& options() const { return o_; }
  // Samples the plan uses per epoch (training: a multiple of the global batch).
  int64_t samples_per_epoch() const { return used_; }
  // Training: the samples an epoch draws from (the dataset size, or `limit`):
  // the epoch_size of data/train_progress.h. Evaluation: samples_per_epoch().
  int64_t epoch_size() const { return size_; }
  // Evaluation: the size of this rank's share (training: 0).
  int64_t share_size() const { return share_end_ - share_begin_; }
  // Batches this rank gets per epoch (training: the same on every rank).
  int64_t batches_per_epoch() const { return batches_; }
  // Prepares epoch `epoch`'s order (training: O(dataset) for the permutation).
  void set_epoch(int64_t epoch);
  int64_t epoch() const { return epoch_; }
  // Whether this rank has a batch at cursor position `sample` (training: a
  // full global batch starts there, sample + world x batch <= epoch_size();
  // evaluation: 0 <= sample < share_size()).
  bool has_batch(int64_t sample) const;
  // The global sample indices of this rank's batch at cursor position
  // `sample` of the current epoch (training: permutation positions
  // sample + rank*batch ...; evaluation: share offsets sample ...). Returns
  // how many (batch_size, except an evaluation rank's last batch).
  int64_t batch_at(int64_t sample, int64_t* indices) const;

 private:
  EpochPlanOptions o_;
  int64_t size_ = 0, used_ = 0, batches_ = 0;
  int64_t share_begin_ = 0, share_end_ = 0;  // evaluation: this rank's share
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;  // training: the epoch's permutation
};

// Rank `rank`'s contiguous share [begin, end) of n samples over `world`
// ranks: sizes differ by at most one, lower ranks get the extra ones.
std::pair<int64_t, int64_t> contiguous_share(int64_t n, int rank, int world);

// Fisher-Yates permutation of [0, n) drawn from (seed, epoch) with
// SampleRng: identical on every platform and rank.
void shuffled_order(int64_t n, uint64_t seed, int64_t epoch, std::vector<int64_t>& out);

}  // namespace rn::data
