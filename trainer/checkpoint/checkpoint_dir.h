// The checkpoints of a run directory: checkpoint-<step, 8 digits>.h5 files,
// a `checkpoint.h5` symbolic link to the newest, and hidden
// `.checkpoint-*.h5.tmp` files that only an interrupted write leaves.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trainer/checkpoint/checkpoint_reader.h"

namespace rn {

// "checkpoint-00001234.h5".
std::string checkpoint_file_name(int64_t step);

struct CheckpointEntry {
  int64_t step = 0;
  std::string path;
};

// The checkpoint-<step>.h5 files in `dir`, newest (highest step) first.
std::vector<CheckpointEntry> list_checkpoints(const std::string& dir);

// The newest checkpoint in `dir` that read_checkpoint_info accepts (its
// info, read once), or nullopt when there is none. `skipped` gets one line per newer file rejected
// (an interrupted or damaged write) saying why.
std::optional<CheckpointInfo> find_latest_checkpoint(const std::string& dir, std::vector<std::string>* skipped);

// After a successful save: points checkpoint.h5 at `newest` (atomically, by
// renaming a new link over it) and deletes all but the `keep` newest
// checkpoint files. Leftover temporary files of interrupted writes go too.
void after_checkpoint_saved(const std::string& dir, const std::string& newest, int keep);

// Moves the checkpoints of `dir` with a step above `keep_up_to` into a new
// subdirectory superseded-<UTC time>/ (nothing is deleted), so that
// --resume auto never picks a checkpoint from a run that a fresh start
// (keep_up_to = -1) or a resume from an older checkpoint replaced. Returns
// that subdirectory, or "" when nothing was moved.
std::string set_aside_checkpoints(const std::string& dir, int64_t keep_up_to);

}  // namespace rn
