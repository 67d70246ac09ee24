// The whole trainer loop (loader, upload, step, gradient all-reduce,
// schedule, stop-signal agreement, a new epoch's plan, ...) allocates
// nothing per step: steps first..last of a run make no allocation outside
// the libraries (the run's logging, validation and checkpoint come at its
// end, after last).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <optional>

#include "tests/alloc/alloc_counter.h"
#include "trainer/config/config.h"
#include "trainer/train/trainer.h"

namespace rn::alloc_test {

// Runs `job` (fresh output directory) on `world` (nullptr: one process).
inline void expect_trainer_steps_allocate_nothing(Config job, int64_t first, int64_t last,
                                                  comm::Communicator* world = nullptr) {
  job.data.val_samples = 0;
  job.train.epochs = 1000;  // max_steps ends the run
  job.train.max_steps = last + 4;
  job.train.log_every = 1000;
  job.checkpoint.every_minutes = 0;
  std::optional<AllocationWatch> watch;
  const TrainResult r = run_training(job, world, {}, [&](int64_t step) {
    if (step == first - 1) watch.emplace();
    if (step == last) watch->stop();
  });
  ASSERT_EQ(r.steps, last + 4);
  ASSERT_TRUE(watch.has_value());
  EXPECT_EQ(watch->count(), 0u) << "steps " << first << " to " << last << " of the trainer loop allocated:\n"
                                << watch->where();
  std::printf("  (steps %lld to %lld: allocations inside the libraries' own code: %s)\n", static_cast<long long>(first),
              static_cast<long long>(last), watch->libraries().c_str());
}

}  // namespace rn::alloc_test
