// What the training loop reads: batches of normalised images with labels,
// from the HDF5 loader (data/loader.h) or the built-in synthetic source
// (data/synthetic_stream.h), behind one interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace rn::data {

// Where a stream is: the batch next() hands out next.
//
// Training streams: `sample` is the position, in epoch `epoch`'s order, of
// the first sample of the next global batch (all ranks together; the same
// value on every rank); rank r's batch is positions [sample + r*B,
// sample + (r+1)*B), B the batch size per rank. Each step advances it by the
// global batch G = B x world, into {epoch + 1, 0} when fewer than G samples
// are left (data/train_progress.h). Counting samples rather than steps lets
// a run resume with another world or batch size and finish the same epoch.
//
// Evaluation streams: `sample` is the offset into this rank's share (a
// multiple of B); they end after one epoch, when it reaches the share size.
struct DataCursor {
  int64_t epoch = 0;
  int64_t sample = 0;
  friend bool operator==(const DataCursor&, const DataCursor&) = default;
};

// A batch owned by its stream, valid until the stream's next call to next()
// or start().
struct Batch {
  DataCursor at;                      // the cursor it was taken at
  int64_t n = 0;                      // samples: the batch size, except an evaluation rank's last batch
  int views = 1;                      // 10 for 10-crop evaluation
  int image_size = 0;                 // S
  const float* images = nullptr;      // [views][n][3][S][S], normalised
  const int32_t* labels = nullptr;    // [n]; -1 marks a skipped corrupt image
  const int64_t* indices = nullptr;   // [n] global sample indices
  int64_t skipped = 0;                // samples with label -1
  std::vector<std::string> warnings;  // one per skipped sample, naming shard and index

  const float* view(int v) const { return images + int64_t(v) * n * 3 * image_size * image_size; }
};

// Page-locks [p, p + bytes) for asynchronous device uploads while the
// returned handle lives (Backend::pin_host_memory); null where pinning does
// not apply (a host backend).
using HostPinner = std::function<std::shared_ptr<void>(void* p, size_t bytes)>;

class BatchStream {
 public:
  virtual ~BatchStream() = default;
  // Pins, with `pin`, the image memory of every batch handed out, now and
  // when buffers are created later (kept until the stream is destroyed).
  // The consumer must be done uploading a batch before its next call to
  // next() or start(), as for any use of Batch::images.
  virtual void pin_images(const HostPinner& pin) = 0;
  // This rank's batches per epoch (training: the same on every rank; whole
  // epochs from sample 0: epoch_size() / G).
  virtual int64_t batches_per_epoch() const = 0;
  // Samples all ranks together use per epoch (training: a multiple of G).
  virtual int64_t samples_per_epoch() const = 0;
  // Training: n, the samples an epoch draws from (its order is a sequence of
  // n positions, of which (n / G) * G are used from sample 0): the epoch_size
  // of data/train_progress.h. Evaluation: the samples evaluated, all ranks
  // together (samples_per_epoch()).
  virtual int64_t epoch_size() const = 0;
  virtual int views() const { return 1; }
  // Positions the stream so that next() returns batch `c` first. Training:
  // any cursor with a full global batch left in its epoch, or one with fewer
  // left (e.g. saved at a smaller G), which means {c.epoch + 1, 0}.
  // Throws rn::InternalError for a cursor outside the epoch.
  virtual void start(DataCursor c) = 0;
  virtual const Batch& next() = 0;
  // The batch next() returns next: what a checkpoint stores to resume exactly.
  virtual DataCursor cursor() const = 0;
  // Seconds next() has spent waiting for data.
  virtual double wait_seconds() const { return 0; }
};

}  // namespace rn::data
