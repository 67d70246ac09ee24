// What a checkpoint holds besides the weights: where the run is and how it
// got there. Units: steps are optimizer updates; the cursor counts samples
// of the epoch's order (data/train_progress.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/batch_stream.h"

namespace rn {

// The checkpoint format this build writes; readers accept versions <= it.
inline constexpr int64_t kCheckpointFormatVersion = 2;

struct TrainState {
  int64_t step = 0;                            // optimizer steps done
  data::DataCursor cursor;                     // the next global batch's position
  std::vector<data::DataCursor> rank_cursors;  // every rank's cursor when saved (all equal)
  double epoch_position = 0;                   // epochs done, fractional
  int64_t epoch_size = 0;                      // samples a training epoch draws from
  double lr = 0;                               // learning rate of the last step
  double base_lr = 0;                          // after linear scaling
  std::string lr_schedule;                     // optim.schedule
  int64_t world_size = 1;                      // ranks when saved
  int64_t batch_size = 0;                      // images per rank per step (batch_size x accumulate)
  uint64_t seed = 0;                           // train.seed: with the cursor, the whole RNG state
  std::string config_ini;                      // the run's effective configuration (to_ini)
  std::vector<std::string> class_names;        // index = label; empty when unknown
  std::string program_version;                 // of the writer
};

}  // namespace rn
