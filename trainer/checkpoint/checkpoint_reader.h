// Reads checkpoint files (docs/CHECKPOINT.md): the run state first, to
// decide whether and how to resume, then the weights and momentum into a
// model built for them. Every problem with the file is an rn::UserError
// that names the file and says what to do; nothing is modified.
#pragma once

#include <string>
#include <vector>

#include "trainer/checkpoint/train_state.h"
#include "trainer/model/resnet.h"

namespace rn {

struct CheckpointInfo {
  std::string path;
  int64_t format_version = 0;
  std::string arch;  // model.arch of the weights
  int64_t num_classes = 0;
  bool has_optimizer_state = false;  // false: weights only (import_torch.py)
  TrainState state;                  // cursor/rank_cursors empty for weights-only files
};

// Opens `path` and checks it is a complete checkpoint of a format this
// build reads. Throws UserError: missing, not HDF5, another kind of HDF5
// file, cut short (no `complete` mark), newer format.
CheckpointInfo read_checkpoint_info(const std::string& path);

enum class WeightMatch {
  kExact,               // every parameter and buffer, same shapes (resume, inference)
  kAllowNewClassifier,  // fc.* may differ in shape and keeps its initialisation (--init-from)
};

// Loads /model into `model`, checking that names and shapes match it exactly
// (UserError listing the differences otherwise). Returns the names left as
// initialised (kAllowNewClassifier only).
std::vector<std::string> load_model_weights(const CheckpointInfo& ck, ResNet& model, Backend& be, WeightMatch match);

// Loads /optimizer/momentum into the flat momentum buffer (ParamStore layout).
void load_momentum(const CheckpointInfo& ck, ParamStore& params, Tensor& velocity, Backend& be);

}  // namespace rn
