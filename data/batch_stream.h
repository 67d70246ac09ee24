// What the training loop reads: batches of normalised images with labels,
// from the HDF5 loader (data/loader.h) or the built-in synthetic source
// (data/synthetic_stream.h), behind one interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rn::data {

// The batch next() hands out next. Training streams continue into the next
// epoch after the last batch; evaluation streams end there.
struct DataCursor {
  int64_t epoch = 0;
  int64_t batch = 0;
  friend bool operator==(const DataCursor&, const DataCursor&) = default;
};

// A batch owned by its stream, valid until the stream's next call to next()
// or start().
struct Batch {
  DataCursor at;                     // which batch this is
  int64_t n = 0;                     // samples: the batch size, except an evaluation rank's last batch
  int views = 1;                     // 10 for 10-crop evaluation
  int image_size = 0;                // S
  const float* images = nullptr;     // [views][n][3][S][S], normalised
  const int32_t* labels = nullptr;   // [n]; -1 marks a skipped corrupt image
  const int64_t* indices = nullptr;  // [n] global sample indices
  int64_t skipped = 0;               // samples with label -1
  std::vector<std::string> warnings;  // one per skipped sample, naming shard and index

  const float* view(int v) const { return images + int64_t(v) * n * 3 * image_size * image_size; }
};

class BatchStream {
 public:
  virtual ~BatchStream() = default;
  // This rank's batches per epoch (training: the same on every rank).
  virtual int64_t batches_per_epoch() const = 0;
  // Samples all ranks together use per epoch.
  virtual int64_t samples_per_epoch() const = 0;
  virtual int views() const { return 1; }
  // Positions the stream so that next() returns batch `c` first.
  virtual void start(DataCursor c) = 0;
  virtual const Batch& next() = 0;
  // The batch next() returns next: what a checkpoint stores to resume exactly.
  virtual DataCursor cursor() const = 0;
  // Seconds next() has spent waiting for data.
  virtual double wait_seconds() const { return 0; }
};

}  // namespace rn::data
