// The steady-state training step allocates no memory ("no allocation in the
// step loop"): after the first steps have built every layer's plan, further
// steps, with or without the overlapped gradient all-reduce, and the whole
// trainer loop, make no heap allocation on any thread (alloc_counter.h sees
// malloc from every library; what oneDNN and Open MPI allocate inside their
// own calls is counted apart and printed, see there).
//
// The steady state of a rig: step_rig.h.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

#include "comm/communicator.h"
#include "comm/dtype.h"
#include "tests/alloc/alloc_counter.h"
#include "tests/alloc/step_rig.h"
#include "tests/alloc/trainer_loop_allocations.h"
#include "tests/unit/dataset_test_util.h"
#include "tests/unit/training_test_util.h"

namespace rn::alloc_test {
namespace {

// Kernels build shapes for their checks on every call (the CUDA backend's
// convolutions and pooling do): that must not touch the heap.
TEST(Shape, BuildingAndComparingAllocateNothing) {
  const Shape want{8, 64, 56, 56};
  int64_t n = 8;
  AllocationWatch watch;
  const Shape s{n, 64, 56, 56}, flat{n * 64}, empty{};
  const bool same = s == want && flat.numel() == 512 && empty.rank() == 0;
  watch.stop();
  EXPECT_TRUE(same);
  EXPECT_EQ(watch.count(), 0u) << watch.where();
}

struct Case {
  const char* arch;
  int image;
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.arch << " at " << c.image << " px"; }
};

class CpuStep : public ::testing::TestWithParam<Case> {};

TEST_P(CpuStep, AllocatesNothingAfterTheFirstSteps) {
  auto be = make_cpu_backend(2);
  StepRig rig(*be, GetParam().arch, 4, GetParam().image);
  expect_steady_steps_allocate_nothing(rig, GetParam().arch);
}

// Basic blocks with the option-A (zero-padding) shortcut, basic blocks with
// projections, bottlenecks.
INSTANTIATE_TEST_SUITE_P(Archs, CpuStep,
                         ::testing::Values(Case{"cifar-resnet20", 16}, Case{"resnet18", 32}, Case{"resnet50", 32}),
                         [](const auto& info) {
                           std::string s = info.param.arch;
                           for (auto& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// With the world: every bucket all-reduced on the communication thread
// while backward runs (fp32 and bf16 on the wire), on every rank.
class DataParallelStep : public ::testing::TestWithParam<std::string> {};

TEST_P(DataParallelStep, AllocatesNothingAfterTheFirstSteps) {
  comm::Communicator world(MPI_COMM_WORLD, 120.0);
  auto be = make_cpu_backend(1);
  StepRig rig(*be, "resnet18", 2, 32);
  DataParallelOptions o;
  o.segment_bytes = 64 * 1024;
  o.sync.bucket_bytes = size_t(1) << 20;  // several buckets, overlapped
  ASSERT_TRUE(comm::parse_dtype(GetParam(), &o.sync.wire));
  DataParallel dp(world, rig.model, o);
  dp.broadcast_weights();
  expect_steady_steps_allocate_nothing(rig, fmt::format("rank {} of {}", world.rank(), world.size()), &dp, &world);
  world.barrier("end");
}

INSTANTIATE_TEST_SUITE_P(Wire, DataParallelStep, ::testing::Values("fp32", "bf16"));

// The whole trainer loop (trainer_loop_allocations.h) with train.threads 1
// (one core per rank) and 2, and with gradient accumulation (two
// micro-batches a step); in one process without MPI, or on every rank of the
// world (gradient all-reduce and stop agreement included).
struct LoopCase {
  int threads;
  int accumulate;
};
class TrainerLoop : public ::testing::TestWithParam<LoopCase> {};

TEST_P(TrainerLoop, StepsAllocateNothing) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::optional<comm::Communicator> world;
  if (size > 1) world.emplace(MPI_COMM_WORLD, 120.0);
  // small_job empties the shared output directory: one rank after the
  // other, and all before any starts training.
  if (world && world->rank() > 0) world->barrier("rank 0's job");
  Config job = testing_util::small_job("rn_alloc_run");
  if (world && world->rank() == 0) world->barrier("rank 0's job");
  if (world) world->barrier("every rank's job");
  job.train.threads = GetParam().threads;
  job.train.accumulate = GetParam().accumulate;
  job.data.synthetic_samples = 256;  // 8 steps an epoch at 1 rank (4 accumulating), 4 at 2: new epochs in the window
  expect_trainer_steps_allocate_nothing(job, 5, 12, world ? &*world : nullptr);
}

INSTANTIATE_TEST_SUITE_P(Runs, TrainerLoop, ::testing::Values(LoopCase{1, 1}, LoopCase{2, 1}, LoopCase{1, 2}),
                         [](const ::testing::TestParamInfo<LoopCase>& i) {
                           return "threads" + std::to_string(i.param.threads) + "_accumulate" +
                                  std::to_string(i.param.accumulate);
                         });

// The same with the HDF5 loader: JPEG shards read, decoded and augmented by
// its threads into its batch ring (each slot's byte buffer has settled
// after its first batch, data/loader.cpp).
TEST(TrainerLoopOnShards, StepsAllocateNothing) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) GTEST_SKIP() << "one process";
  const std::string shards = (std::filesystem::temp_directory_path() / "rn_alloc_shards").string();
  std::filesystem::remove_all(shards);
  testing_util::write_dataset(shards, shards::Layout::kJpeg, 640, 128, 4, 40, 32);
  Config job = testing_util::small_job("rn_alloc_shards_run");
  job.data.train = shards;
  job.data.source = "hdf5";
  job.model.num_classes = 4;
  expect_trainer_steps_allocate_nothing(job, 5, 24);  // 20 steps an epoch: a new one at 21
}

}  // namespace
}  // namespace rn::alloc_test
