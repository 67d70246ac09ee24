// When and how a training run saves checkpoints: every checkpoint.every_steps
// steps, when checkpoint.every_minutes have passed (rank 0's clock, agreed
// by the caller's per-step collective), at the end and on a stop signal.
// Rank 0 writes; every rank takes part (BN statistics are averaged and the
// data cursors gathered first), and a failed write stops every rank.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "trainer/checkpoint/train_state.h"
#include "trainer/config/config.h"
#include "trainer/model/resnet.h"

namespace rn::comm {
class Communicator;
}

namespace rn {

class DataParallel;

class Checkpointer {
 public:
  // `run` holds the fields that do not change during the run (base lr,
  // schedule, world size, batch, seed, config text, classes, epoch size).
  // model, be, velocity, world and dp (both may be null) must outlive it.
  Checkpointer(const CheckpointConfig& cfg, const std::string& dir, TrainState run, ResNet& model, Backend& be,
               const Tensor& velocity, comm::Communicator* world, DataParallel* dp);

  bool due_by_steps(int64_t step) const { return cfg_.every_steps > 0 && step % cfg_.every_steps == 0; }
  // Rank 0's view; the caller spreads it with its stop-flag collective.
  bool due_by_time() const;

  // Collective. Returns the path written. progress(n, total) runs on rank 0 after
  // each dataset written (fault injection in tests).
  std::string save(int64_t step, data::DataCursor cursor, double epoch_position, double lr,
                   const std::function<void(int, int)>& progress = {});

 private:
  CheckpointConfig cfg_;
  std::string dir_;
  TrainState run_;
  ResNet& model_;
  Backend& be_;
  const Tensor& velocity_;
  comm::Communicator* world_;
  DataParallel* dp_;
  std::chrono::steady_clock::time_point last_time_;
};

}  // namespace rn
