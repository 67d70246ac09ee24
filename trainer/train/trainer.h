// The training loop of resnet-train: builds the model, the data source and
// the optimizer from a Config, trains, validates, logs and checkpoints.
#pragma once

#include <functional>

#include "trainer/config/config.h"
#include "trainer/train/device_setup.h"
#include "trainer/train/evaluator.h"

namespace rn::comm {
class Communicator;
}

namespace rn {

struct TrainResult {
  int64_t steps = 0;
  double final_loss = 0;     // mean training loss of the last logging window
  double final_top1 = 0;     // training top-1 of the last logging window, in [0, 1]
  double val_top1 = -1;      // last validation top-1, -1 when none ran
  bool interrupted = false;  // stopped early by SIGINT/SIGTERM
  int signal = 0;
};

// Called on the training thread when a step is complete (its logging,
// validation and checkpoint included) with the step's number, counted from
// the start of the original run (1 is the first step). Lets a test watch
// the loop (tests/alloc); must not throw.
using StepObserver = std::function<void(int64_t step)>;

// Runs the job. Throws UserError for problems the user can fix.
// world: the ranks training together (nullptr: a single process without MPI);
// where: this rank's place on its node (its GPU; the ranks of a node share
// its cores when train.threads is 0). Only rank 0 prints and writes files;
// the result is the same on all.
TrainResult run_training(const Config& cfg, comm::Communicator* world = nullptr, RankPlacement where = {},
                         const StepObserver& after_step = {});

// --eval-only: evaluates the checkpoint cfg.checkpoint.resume on data.val
// (every sample once across ranks); rank 0 prints the result and appends an
// "eval" record to <train.output_dir>/metrics.jsonl.
EvalResult evaluate_checkpoint(const Config& cfg, comm::Communicator* world = nullptr, RankPlacement where = {});

// Prints the architecture table of cfg.model (and data.image_size) to stdout.
void print_summary(const Config& cfg);

}  // namespace rn
