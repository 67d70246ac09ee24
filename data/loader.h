// The threaded loader of a sharded dataset (data/FORMAT.md): one rank's
// share of each epoch (data/epoch_plan.h), decoded and augmented
// (data/augment.h) into a bounded ring of ready batches.
//
//   reader thread:  the only HDF5 user; reads each batch's encoded samples
//                   into a free slot (HDF5's global lock never stalls a
//                   decoder, and reads stay sequential per slot)
//   worker threads: decode (TurboJPEG, scaled when the crop is much larger
//                   than the output) and augment one sample at a time
//   next():         hands out batches in order; a slot is reused only after
//                   the batch handed out before it has been given back
//
// Every random choice about a sample comes from (seed, epoch, sample index),
// so batches do not depend on the thread count or timing, and the cursor
// (epoch, sample) is all a checkpoint needs to resume exactly (training:
// also with another world or batch size, data/batch_stream.h).
//
// A corrupt image is skipped: its label becomes -1 (the loss and the
// metrics ignore it), its pixels 0, and a warning naming shard and index is
// attached to the batch. More than max_bad_samples of them is an error.
//
// Memory: 1 + max(1, prefetch / views) slots of batch x views x 3 x S x S
// floats (a 10-crop batch is ten batches of pixels), plus
// the encoded bytes; allocated once by start(), none per batch afterwards.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/batch_stream.h"
#include "data/epoch_plan.h"
#include "data/shard_reader.h"

namespace rn {
class JpegDecoder;
}

namespace rn::data {

struct LoaderOptions {
  std::string dir;            // dataset directory (manifest.json + shards)
  std::string what = "data";  // how messages name it, e.g. "data.train"
  EpochPlanOptions plan;      // dataset_size is filled in from the manifest
  AugmentOptions augment;
  int num_classes = 0;            // > 0: the dataset must have exactly this many classes
  int threads = 2;                // decode + augment workers (>= 1)
  int prefetch = 2;               // one-view batches prepared ahead of the one in use (>= 1)
  int64_t max_bad_samples = 100;  // corrupt images tolerated per loader (>= 0)
};

class Loader : public BatchStream {
 public:
  // Opens and checks the dataset (manifest, shards, every label in range,
  // not empty, at least one batch per epoch); throws rn::UserError naming
  // options.what and what to change. Starts no threads.
  explicit Loader(const LoaderOptions& o);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  const shards::Manifest& manifest() const { return reader_.manifest(); }
  const EpochPlan& plan() const { return plan_info_; }

  int64_t batches_per_epoch() const override { return plan_info_.batches_per_epoch(); }
  int64_t samples_per_epoch() const override { return plan_info_.samples_per_epoch(); }
  // Training: the dataset size; evaluation: the samples evaluated.
  int64_t epoch_size() const override { return plan_info_.epoch_size(); }
  int views() const override { return views_; }
  // (Re)starts the reader and the workers at `c` (earlier batches are
  // dropped). Training: any cursor in the epoch (BatchStream::start);
  // evaluation: a multiple of the batch size within this rank's share.
  // Throws rn::InternalError for another.
  void start(DataCursor c) override;
  // Rethrows a worker's or the reader's error (a data problem is an rn::UserError).
  const Batch& next() override;
  DataCursor cursor() const override { return consumer_; }
  double wait_seconds() const override { return wait_seconds_; }
  void pin_images(const HostPinner& pin) override;
  // Stops and joins the threads; start() may be called again.
  void stop();
  int64_t bad_samples() const { return bad_.load(); }
  int threads() const { return o_.threads; }

 private:
  struct Slot;
  struct Task {
    Slot* slot;
    int64_t item;
  };
  void reader_loop(DataCursor c);
  void worker_loop();
  void process(Slot& s, int64_t item, rn::JpegDecoder& dec, Augmenter& aug);
  void fail(std::exception_ptr e);
  DataCursor advance(DataCursor c) const;
  int64_t global_batch() const;

  LoaderOptions o_;
  shards::ShardReader reader_;  // the reader thread's (and the constructor's)
  EpochPlan plan_;              // the reader thread's: set_epoch mutates it
  EpochPlan plan_info_;         // immutable copy for plan()
  int views_ = 1;
  int64_t floats_per_view_ = 0;

  std::vector<std::unique_ptr<Slot>> slots_;
  HostPinner pin_;           // applied to each slot's images when it is created
  std::vector<Task> tasks_;  // ring of pending work, capacity slots x batch
  size_t task_head_ = 0, task_count_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;  // any state change: slot freed, item done, task queued, stop, error
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread reader_thread_;
  std::vector<std::thread> workers_;
  uint64_t produced_seq_ = 0, consumed_seq_ = 0;  // batches read / handed out since start()
  Slot* handed_ = nullptr;                        // the batch the caller holds
  DataCursor consumer_;
  std::atomic<int64_t> bad_{0};
  double wait_seconds_ = 0;
};

}  // namespace rn::data
