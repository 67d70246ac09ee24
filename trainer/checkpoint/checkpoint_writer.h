// Writes a checkpoint file (format: docs/CHECKPOINT.md): the model under
// /model/<torchvision state_dict name>, SGD momentum under
// /optimizer/momentum/<name>, and the run state (step, schedule, data
// cursors, config text) as attributes and /state datasets.
//
// Atomic: the file is written under a hidden temporary name in the same
// directory, flushed, fsync'ed, marked complete (root attribute
// `complete` = 1, written last) and renamed; the directory is fsync'ed
// after. A crash or kill at any point leaves either the previous files
// untouched or the new one complete.
#pragma once

#include <functional>
#include <string>

#include "trainer/checkpoint/train_state.h"
#include "trainer/model/resnet.h"

namespace rn {

// velocity: the optimizer's flat momentum buffer (ParamStore layout), or
// nullptr for a weights-only file. progress(n, total) is called after the
// n-th of the file's `total` datasets is written (tests use it to kill a
// write midway); may be empty.
// Throws UserError when the file cannot be created or renamed.
void save_checkpoint(const std::string& path, ResNet& model, Backend& be, const Tensor* velocity,
                     const TrainState& state, const std::function<void(int, int)>& progress = {});

}  // namespace rn
