// Writes a model checkpoint as HDF5: one float32 dataset per parameter and
// BN running statistic at the file's root, named and shaped as torchvision's
// state_dict (conv weights OIHW, fc.weight [out, in], num_batches_tracked
// int64), so `{k: torch.as_tensor(f[k][()]) for k in f}` loads into
// torchvision.models.resnetXX(). Run metadata are root attributes.
//
// The file is written to <path>.tmp and renamed, so a crash or a
// preemption mid-write never leaves a truncated checkpoint under `path`.
#pragma once

#include <cstdint>
#include <string>

#include "trainer/model/resnet.h"

namespace rn {

struct CheckpointMeta {
  int64_t step = 0;
  double epoch = 0;
  std::string config_ini;  // the effective configuration
};

void save_checkpoint(const std::string& path, ResNet& model, Backend& be, const CheckpointMeta& meta);

}  // namespace rn
