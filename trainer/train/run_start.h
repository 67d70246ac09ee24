// How a run begins: fresh, from another run's weights
// (checkpoint.init_from), or continuing a checkpoint (checkpoint.resume).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "trainer/checkpoint/checkpoint_reader.h"
#include "trainer/config/config.h"

namespace rn {

struct RunStart {
  std::optional<CheckpointInfo> resume;     // continue this checkpoint
  std::optional<CheckpointInfo> init_from;  // else: start from its weights
  std::vector<std::string> notes;           // log lines: files skipped, where it starts
};

// Resolves checkpoint.resume ("auto": the newest complete checkpoint in
// train.output_dir, none: a fresh start) and checkpoint.init_from. Reads the
// files' run state, no weights. Throws UserError for a bad file or path.
RunStart resolve_run_start(const Config& cfg);

// Checks that `ck` can continue under `cfg`: same model (arch, classes,
// shortcut), seed, data source and training-set size (the data order and the
// cursor depend on them). Throws UserError naming what differs and what to
// do; returns one note per other setting that changed (allowed: lr, epochs,
// batch size, ranks, ...).
std::vector<std::string> check_resumable(const Config& cfg, const CheckpointInfo& ck, int64_t epoch_size);

}  // namespace rn
