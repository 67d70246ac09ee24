// The built-in synthetic data (data/synthetic_source.h) as a BatchStream.
//
// Training: step s of the run (epoch e, batch b: s = e * batches_per_epoch
// + b) is samples [s*G, (s+1)*G) of stream 0, G = batch x world, and rank r
// takes [s*G + r*batch, s*G + (r+1)*batch). Every epoch sees new samples:
// the source is infinite.
// Evaluation: samples [0, samples) of stream 1, in contiguous shares, each
// counted once.
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
  void start(DataCursor c) override { cursor_ = c; }
  const Batch& next() override;
  DataCursor cursor() const override { return cursor_; }

 private:
  SyntheticStreamOptions o_;
  SyntheticSource src_;
  int64_t batches_ = 0, share_begin_ = 0, share_end_ = 0;
  DataCursor cursor_;
  HostBatch host_;
  std::vector<int64_t> indices_;
  Batch batch_;
};

}  // namespace rn::data
