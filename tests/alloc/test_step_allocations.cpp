// The steady-state training step allocates no memory ("no allocation in the
// step loop"): after the first steps have built every layer's plan, further
// steps, with or without the overlapped gradient all-reduce, and the whole
// trainer loop, make no heap allocation on any thread (alloc_counter.h sees
// malloc from every library; what oneDNN and Open MPI allocate inside their
// own calls is counted apart and printed, see there).
//
// Warm-up: two steps (the upload ring's slots are each first used once) and
// one evaluation pass, which builds its own inference plans.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>

#include "comm/communicator.h"
#include "comm/dtype.h"
#include "tests/alloc/alloc_counter.h"
#include "tests/alloc/step_rig.h"
#include "tests/unit/training_test_util.h"
#include "trainer/train/trainer.h"

namespace rn::alloc_test {
namespace {

constexpr int kWarmup = 2, kWatched = 3;

void report_libraries(const AllocationWatch& w) {
  std::printf("  (allocations inside the libraries' own code: %s)\n", w.libraries().c_str());
}

struct Case {
  const char* arch;
  int image;
};

class CpuStep : public ::testing::TestWithParam<Case> {};

TEST_P(CpuStep, AllocatesNothingAfterTheFirstSteps) {
  auto be = make_cpu_backend(2);
  StepRig rig(*be, GetParam().arch, 4, GetParam().image);
  for (int k = 0; k < kWarmup; ++k) rig.step(k);
  rig.evaluate(0);
  AllocationWatch watch;
  for (int k = kWarmup; k < kWarmup + kWatched; ++k) rig.step(k);
  rig.evaluate(1);
  watch.stop();
  EXPECT_EQ(watch.count(), 0u) << kWatched << " training steps and an evaluation batch of " << GetParam().arch
                               << " allocated:\n"
                               << watch.where();
  report_libraries(watch);
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
  for (int k = 0; k < kWarmup; ++k) rig.step(k, &dp);
  world.barrier("warm-up");
  AllocationWatch watch;
  for (int k = kWarmup; k < kWarmup + kWatched; ++k) rig.step(k, &dp);
  watch.stop();
  EXPECT_EQ(watch.count(), 0u) << "rank " << world.rank() << " of " << world.size() << ": " << kWatched
                               << " data-parallel steps allocated:\n"
                               << watch.where();
  if (world.rank() == 0) report_libraries(watch);
  world.barrier("end");
}

INSTANTIATE_TEST_SUITE_P(Wire, DataParallelStep, ::testing::Values("fp32", "bf16"));

// The whole trainer loop (loader, upload, step, schedule, stop-signal
// agreement, ...): a run of 2N steps makes exactly as many allocations as
// a run of N, so the N steps more allocated nothing. Logging, evaluation
// and checkpoints happen once at the end of both (they may allocate).
uint64_t allocations_of_a_run(int64_t steps, int threads) {
  Config c = testing_util::small_job("rn_alloc_run");
  c.data.val_samples = 0;
  c.train.max_steps = steps;
  c.train.threads = threads;
  c.train.log_every = 1000;
  c.checkpoint.every_minutes = 0;
  AllocationWatch watch;
  const TrainResult r = run_training(c);
  watch.stop();
  EXPECT_EQ(r.steps, steps);
  std::printf("  a run of %lld steps: %llu allocations", static_cast<long long>(steps),
              static_cast<unsigned long long>(watch.count()));
  report_libraries(watch);
  return watch.count();
}

// train.threads 1 (one core per rank) and 2.
class TrainerLoop : public ::testing::TestWithParam<int> {};

TEST_P(TrainerLoop, MoreStepsMakeNoMoreAllocations) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) GTEST_SKIP() << "one process: run_training here has no world";
  allocations_of_a_run(4, GetParam());  // process-wide first-time work (thread pools, HDF5)
  const uint64_t short_run = allocations_of_a_run(8, GetParam());
  const uint64_t long_run = allocations_of_a_run(16, GetParam());
  EXPECT_EQ(long_run, short_run) << "8 more steps of the trainer loop allocated " << int64_t(long_run - short_run)
                                 << " times";
}

INSTANTIATE_TEST_SUITE_P(Threads, TrainerLoop, ::testing::Values(1, 2));

}  // namespace
}  // namespace rn::alloc_test
