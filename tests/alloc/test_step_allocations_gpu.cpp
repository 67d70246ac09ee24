// The GPU step allocates nothing either: no device or page-locked memory
// (Backend::device_allocations counts every cudaMalloc and cudaMallocHost)
// and no host heap outside the libraries (what cuDNN, cuBLAS and the CUDA
// runtime allocate inside their calls is printed). Skips without a GPU.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "comm/allreduce.h"
#include "comm/communicator.h"
#include "tests/alloc/alloc_counter.h"
#include "tests/alloc/step_rig.h"
#include "tests/alloc/trainer_loop_allocations.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu_mpi/mpi_gpu_fixture.h"
#include "tests/unit/training_test_util.h"

namespace rn::alloc_test {
namespace {

using gpu_test::GpuTest;

class GpuStep : public gpu_test::GpuTestWithParam<DType> {};

TEST_P(GpuStep, AllocatesNothingAfterTheFirstSteps) {
  Backend& be = gpu_test::gpu(GetParam());
  // Bottleneck blocks with projections at a size where every layer runs cuDNN's real kernels.
  StepRig rig(be, "resnet50", 8, 64, GetParam() == DType::kF16);
  expect_steady_steps_allocate_nothing(rig, std::string("resnet50 on the GPU in ") + dtype_name(GetParam()));
}

// A data-parallel step on the GPU (run under mpiexec -np 2; rank r on GPU
// local rank % visible): the gradient buckets all-reduced by our ring
// (device buffers, staged or CUDA-aware) and by NCCL, overlapped with
// backward. NCCL needs a GPU per rank: skipped where ranks share one.
class GpuDataParallelStep : public gpu_test::MpiGpuTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(GpuDataParallelStep, AllocatesNothingAfterTheFirstSteps) {
  comm::Communicator& world = *comm_;
  BackendOptions bo;
  bo.device = "cuda";
  bo.cuda_device = device_;
  bo.precision = DType::kBF16;
  bo.workspace_bytes = size_t(256) << 20;
  const std::unique_ptr<Backend> backend = make_backend(bo);
  Backend& be = *backend;
  StepRig rig(be, "resnet18", 8, 64);
  DataParallelOptions o;
  ASSERT_TRUE(comm::parse_algorithm(GetParam(), &o.algorithm));
  o.sync.bucket_bytes = size_t(4) << 20;  // several buckets
  std::optional<DataParallel> dp;
  try {
    dp.emplace(world, rig.model, o);
  } catch (const AgreedError& e) {  // every rank alike
    if (GetParam() == "nccl") GTEST_SKIP() << e.what();
    throw;
  }
  dp->broadcast_weights();
  expect_steady_steps_allocate_nothing(rig, "rank " + std::to_string(world.rank()) + ", " + GetParam(), &*dp, &world);
  world.barrier("end");
}

INSTANTIATE_TEST_SUITE_P(Allreduce, GpuDataParallelStep, ::testing::Values("ring", "nccl"));

// The whole trainer loop on the GPU in bf16 (trainer_loop_allocations.h).
TEST_F(GpuTest, TrainerLoopStepsAllocateNothing) {
  Config job = testing_util::small_job("rn_alloc_gpu_run");
  job.train.device = "cuda";
  job.train.precision = "bf16";
  job.data.synthetic_samples = 256;  // 8 steps an epoch
  expect_trainer_steps_allocate_nothing(job, 5, 12);
}

INSTANTIATE_TEST_SUITE_P(Precisions, GpuStep, ::testing::Values(DType::kF32, DType::kBF16, DType::kF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace rn::alloc_test
