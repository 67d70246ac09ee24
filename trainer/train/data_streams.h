// Builds the training and validation BatchStreams of a run from its Config:
// the synthetic source, or the HDF5 loader with the configured augmentation.
#pragma once

#include <memory>
#include <string>

#include "data/batch_stream.h"
#include "trainer/config/config.h"

namespace rn {

struct DataStreams {
  std::unique_ptr<data::BatchStream> train;
  std::unique_ptr<data::BatchStream> val;  // null: no validation
  std::string description;                 // one log line per stream
};

// rank/world: this rank among the data-parallel ranks; local_size: ranks on
// this node, which share its cores among their loader threads. Throws
// rn::UserError for a missing or unusable dataset, before training starts.
DataStreams make_data_streams(const Config& cfg, int rank, int world, int local_size);

}  // namespace rn
