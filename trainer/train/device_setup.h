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
  int early_gpu = -1;  // the GPU bind_gpu_before_mpi made current, or -1
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

// This process's position on its node as its launcher's environment says:
// OMPI_COMM_WORLD_LOCAL_RANK (Open MPI's mpirun), MPI_LOCALRANKID (MPICH,
// Intel MPI), SLURM_LOCALID (srun), the first one set; -1 when none is (or
// it is not a number >= 0). Under mpirun inside a Slurm job every rank
// inherits its daemon's SLURM_LOCALID, hence Open MPI's variable first.
int launcher_local_rank();

// With train.device = cuda under a launcher: makes the GPU that
// choose_device will pick (launcher_local_rank() modulo the visible GPUs)
// current before MPI_Init, so that an MPI that initialises CUDA there (a
// CUDA-aware build) creates its context on this rank's GPU, not on GPU 0.
// Returns that GPU, or -1 when it does nothing (another device, no launcher
// variable, no GPU: make_rank_backend reports problems later, on every rank).
int bind_gpu_before_mpi(const Config& cfg);

// choose_device + make_backend; also returns the choice.
std::unique_ptr<Backend> make_rank_backend(const Config& cfg, RankPlacement where, DeviceChoice* chosen = nullptr);

// The precision the run computes in (train.precision with auto resolved).
DType resolved_precision(const Config& cfg);
// precision ("auto", "fp32", "bf16", "fp16") on device ("cpu", "cuda"):
// auto is bf16 on a GPU and fp32 on the CPU. False for an unknown name.
bool resolve_precision(const std::string& precision, const std::string& device, DType* out);

}  // namespace rn
