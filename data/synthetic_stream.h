// The built-in synthetic data (data/synthetic_source.h) as a BatchStream.
//
// Training: an epoch draws from n = epoch_size() = max(samples, G) samples,
// G = batch x world, and epoch e's position p is sample e*n + p of stream 0:
// at cursor c (data/batch_stream.h) rank r takes samples
// c.epoch*n + c.sample + r*batch + [0, batch). Every epoch sees new samples
// (the source is infinite), and no sample index is used twice in a run, also
// when it resumes with another world or batch size (as long as n stays the
// same, i.e. samples >= G).
// Evaluation: samples [0, samples) of stream 1, in contiguous shares, each
// counted once; the cursor's sample is the offset into this rank's share.
#pragma once

#include <cstdint>
#include <vector>

#include "data/batch_stream.h"
#include "data/synthetic_source.h"

namespace rn::data {

struct SyntheticStreamOptions {
  SyntheticOptions source;
  int batch_size = 1;  // per rank
  int rank = 0, world = 1;
  bool train = true;
  int64_t samples = 0;  // training: per epoch (at least one global batch is used); evaluation: in all
};

class SyntheticStream : public BatchStream {
 public:
  explicit SyntheticStream(const SyntheticStreamOptions& o);
  int64_t batches_per_epoch() const override { return batches_; }
  int64_t samples_per_epoch() const override;
  // Training: max(samples, G); evaluation: samples.
  int64_t epoch_size() const override { return epoch_size_; }
  // Throws rn::InternalError for a cursor outside the epoch (BatchStream::start).
  void start(DataCursor c) override;
  const Batch& next() override;
  DataCursor cursor() const override { return cursor_; }
  void pin_images(const HostPinner& pin) override;

 private:
  SyntheticStreamOptions o_;
  SyntheticSource src_;
  int64_t global_ = 0, epoch_size_ = 0, batches_ = 0, share_begin_ = 0, share_end_ = 0;
  DataCursor cursor_;
  HostBatch host_;
  std::vector<int64_t> indices_;
  Batch batch_;
  std::shared_ptr<void> pinned_;  // host_.images page-locked; released before host_
};

}  // namespace rn::data
