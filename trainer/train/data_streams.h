// Builds the training and validation BatchStreams of a run from its Config:
// the synthetic source, or the HDF5 loader with the configured augmentation.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/batch_stream.h"
#include "trainer/backend/backend.h"
#include "trainer/config/config.h"

namespace rn {

struct DataStreams {
  std::unique_ptr<data::BatchStream> train;
  std::unique_ptr<data::BatchStream> val;  // null: no validation
  std::string description;                 // one log line per stream
  std::vector<std::string> class_names;    // index = label; empty for synthetic data
};

// The augmentation `kind` (data.train_augment / data.val_augment values) with
// the image size, resize, normalisation and flip settings of `d`.
data::AugmentOptions augment_options(const DataConfig& d, const std::string& kind);

// Images a training batch holds per rank: one optimizer step's,
// train.batch_size x train.accumulate (the trainer runs it as `accumulate`
// micro-batches). Validation batches hold train.batch_size.
int train_batch_per_rank(const Config& cfg);

// rank/world: this rank among the data-parallel ranks; local_size: ranks on
// this node, which share its cores among their loader threads. Throws
// rn::UserError for a missing or unusable dataset, before training starts.
DataStreams make_data_streams(const Config& cfg, int rank, int world, int local_size);

// Lets `be` pin the streams' image buffers (Backend::pin_host_memory: on a
// GPU, batch uploads become asynchronous copies). `be` must outlive `s`.
void pin_images(DataStreams& s, Backend& be);

}  // namespace rn
