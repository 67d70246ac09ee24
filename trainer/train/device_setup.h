// Which backend a rank computes on: train.device, train.precision and the
// [gpu] keys turned into BackendOptions, with the rank's GPU chosen by its position on the node.
#pragma once

#include <memory>
#include <string>

#include "trainer/backend/backend.h"
#include "trainer/config/config.h"

namespace rn {

struct RankPlacement {
  int local_rank = 0;  // position among the ranks on this node
  int local_size = 1;  // ranks on this node
};

struct DeviceChoice {
  BackendOptions options;
  std::string note;  // for the run log ("" when nothing to say)
};

// cpu: threads_per_rank(train.threads). cuda: GPU local_rank modulo the
// visible GPUs (CUDA_VISIBLE_DEVICES and Slurm's binding decide what is
// visible; several ranks may share one GPU), precision auto -> bf16 (the
// backend needs compute capability >= 8.0, which has bf16). Creates no
// CUDA context.
DeviceChoice choose_device(const Config& cfg, RankPlacement where);

// choose_device + make_backend; also returns the choice.
std::unique_ptr<Backend> make_rank_backend(const Config& cfg, RankPlacement where, DeviceChoice* chosen = nullptr);

// The precision the run computes in (train.precision with auto resolved).
DType resolved_precision(const Config& cfg);
// precision ("auto", "fp32", "bf16", "fp16") on device ("cpu", "cuda"):
// auto is bf16 on a GPU and fp32 on the CPU. False for an unknown name.
bool resolve_precision(const std::string& precision, const std::string& device, DType* out);

}  // namespace rn
