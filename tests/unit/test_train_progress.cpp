// Training progress as a sample cursor (data/train_progress.h): the cursor
// arithmetic, and resuming an epoch with another world or batch size on the
// epoch plan (data/epoch_plan.h) and the synthetic stream
// (data/synthetic_stream.h) without repeating or skipping a sample.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "data/epoch_plan.h"
#include "data/synthetic_stream.h"
#include "data/train_progress.h"
#include "trainer/core/error.h"

namespace {

using namespace rn::data;

TEST(TrainProgress, AdvanceMovesByTheGlobalBatchAndLeavesTheTailForTheNextEpoch) {
  // n = 103, G = 8: steps at 0, 8, ..., 88; 96 + 8 > 103 ends the epoch.
  DataCursor c{0, 0};
  int64_t steps = 0;
  while (c.epoch == 0) {
    ASSERT_TRUE(valid_train_cursor(c, 103, 8));
    EXPECT_EQ(c.sample, steps * 8);
    c = advance_train(c, 103, 8);
    ++steps;
  }
  EXPECT_EQ(steps, 103 / 8);
  EXPECT_EQ(c, (DataCursor{1, 0}));
  // An offset that is not a multiple of G (saved at another G) crosses the
  // epoch end the same way.
  EXPECT_EQ(advance_train({2, 37}, 103, 12), (DataCursor{2, 49}));
  EXPECT_EQ(advance_train({2, 85}, 103, 12), (DataCursor{3, 0}));   // 97 + 12 > 103
  EXPECT_EQ(advance_train({2, 79}, 103, 12), (DataCursor{2, 91}));  // 91 + 12 = 103: one more full batch
  EXPECT_EQ(advance_train({2, 91}, 103, 12), (DataCursor{3, 0}));
  EXPECT_EQ(advance_train({0, 0}, 12, 12), (DataCursor{1, 0}));      // one batch per epoch
  EXPECT_THROW(advance_train({0, 92}, 103, 12), rn::InternalError);  // fewer than G left: not a valid cursor
  EXPECT_THROW(advance_train({0, 0}, 7, 8), rn::InternalError);      // epoch smaller than a global batch
}

TEST(TrainProgress, ValidAndNormalizedCursors) {
  EXPECT_TRUE(valid_train_cursor({0, 0}, 103, 12));
  EXPECT_TRUE(valid_train_cursor({5, 91}, 103, 12));
  EXPECT_FALSE(valid_train_cursor({5, 92}, 103, 12));
  EXPECT_FALSE(valid_train_cursor({-1, 0}, 103, 12));
  EXPECT_FALSE(valid_train_cursor({0, -1}, 103, 12));
  // A cursor with fewer than G samples left (e.g. saved at a smaller G) means the next epoch.
  EXPECT_EQ(normalize_train_cursor({4, 92}, 103, 12), (DataCursor{5, 0}));
  EXPECT_EQ(normalize_train_cursor({4, 103}, 103, 12), (DataCursor{5, 0}));
  EXPECT_EQ(normalize_train_cursor({4, 91}, 103, 12), (DataCursor{4, 91}));
  EXPECT_EQ(normalize_train_cursor({4, 104}, 103, 12), (DataCursor{4, 104}));  // outside: left for the check
}

TEST(TrainProgress, BatchesLeftAndEpochPosition) {
  EXPECT_EQ(train_batches_left({0, 0}, 103, 8), 12);
  EXPECT_EQ(train_batches_left({0, 40}, 103, 12), 5);  // 40, 52, 64, 76, 88
  EXPECT_EQ(train_batches_left({3, 92}, 103, 12), 0);
  EXPECT_EQ(train_batches_left({3, 103}, 103, 12), 0);
  EXPECT_DOUBLE_EQ(epoch_position({0, 0}, 103, 8), 0.0);
  EXPECT_DOUBLE_EQ(epoch_position({2, 48}, 103, 8), 2.5);  // used = 96
  EXPECT_DOUBLE_EQ(epoch_position({1, 24}, 100, 12), 1.25);
}

TEST(TrainProgress, StepsUntilFromTheStartIsTheOldFormula) {
  for (int64_t n : {103, 96, 1000, 1281167, 50000}) {
    for (int64_t g : {1, 8, 12, 96, 256}) {
      if (g > n) continue;
      const int64_t per_epoch = n / g;
      for (double epochs : {0.0, 0.1, 0.3, 0.5, 1.0, 1.5, 2.25, 2.7, 3.0, 16.6, 90.0, 90.1}) {
        const auto old_formula = static_cast<int64_t>(std::ceil(epochs * double(per_epoch)));
        EXPECT_EQ(train_steps_until({0, 0}, epochs, n, g), old_formula) << n << " " << g << " " << epochs;
      }
    }
  }
}

TEST(TrainProgress, StepsUntilCountsFromAnyCursor) {
  // n = 103, G = 8: 12 steps per epoch, used = 96.
  EXPECT_EQ(train_steps_until({1, 0}, 2.0, 103, 8), 12);
  EXPECT_EQ(train_steps_until({1, 40}, 2.0, 103, 8), 7);  // 40 .. 88
  EXPECT_EQ(train_steps_until({1, 40}, 1.5, 103, 8), 1);  // target 48
  EXPECT_EQ(train_steps_until({1, 41}, 1.5, 103, 8), 1);  // 41 < 48: one more step
  EXPECT_EQ(train_steps_until({1, 48}, 1.5, 103, 8), 0);  // there
  EXPECT_EQ(train_steps_until({1, 56}, 1.5, 103, 8), 0);  // past it
  EXPECT_EQ(train_steps_until({3, 0}, 2.5, 103, 8), 0);
  EXPECT_EQ(train_steps_until({0, 37}, 2.25, 103, 8), 8 + 12 + 3);  // (103-37)/8 = 8, a whole epoch, ceil(24/8)
  // A cursor left by another G: a world change after 5 steps at G = 8
  // (sample 40) to G = 12, for 2 epochs: 5 more steps in epoch 0, 8 in epoch 1.
  EXPECT_EQ(train_steps_until({0, 40}, 2.0, 103, 12), 5 + 8);
  EXPECT_EQ(train_steps_until({0, 100}, 1.0, 103, 12), 0);  // only the tail left
  // From 44 at G = 12 the epoch ends after 4 steps (80 + 12 + 12 > 103), before
  // reaching 0.999 x 96 samples: the next step is already in epoch 1.
  EXPECT_EQ(train_steps_until({0, 44}, 0.999, 103, 12), 4);
  EXPECT_EQ(train_steps_until({0, 44}, 1.5, 103, 12), 4 + 4);
  // Summing the steps that advance_train takes agrees.
  for (double epochs : {0.5, 0.999, 1.0, 1.7, 2.25}) {
    for (const DataCursor start : {DataCursor{0, 0}, DataCursor{0, 37}, DataCursor{0, 44}, DataCursor{1, 5}}) {
      DataCursor c = start;
      int64_t steps = 0;
      while (epoch_position(c, 103, 12) < epochs) c = advance_train(c, 103, 12), ++steps;
      EXPECT_EQ(train_steps_until(start, epochs, 103, 12), steps) << epochs << " from " << start.sample;
    }
  }
}

// Steps rank plans (one per rank, all with the same world and batch size)
// from `c` until `max_steps` steps or the end of c's epoch, appending each
// step's samples in rank order to `seen`. Returns the cursor after them.
DataCursor take(std::vector<EpochPlan>& ranks, DataCursor c, int64_t max_steps, std::vector<int64_t>& seen) {
  const auto& o = ranks[0].options();
  const int64_t global = int64_t(o.batch_size) * o.world, n = ranks[0].epoch_size();
  const int64_t epoch = c.epoch;
  c = normalize_train_cursor(c, n, global);  // fewer than G left: nothing more in this epoch
  std::vector<int64_t> idx(size_t(o.batch_size));
  for (int64_t s = 0; s < max_steps && c.epoch == epoch; ++s) {
    for (auto& p : ranks) {
      p.set_epoch(c.epoch);
      EXPECT_TRUE(p.has_batch(c.sample));
      const int64_t got = p.batch_at(c.sample, idx.data());
      EXPECT_EQ(got, o.batch_size);
      seen.insert(seen.end(), idx.begin(), idx.begin() + got);
    }
    c = advance_train(c, n, global);
  }
  return c;
}

std::vector<EpochPlan> plans(int64_t size, int batch, int world, uint64_t seed) {
  std::vector<EpochPlan> out;
  for (int r = 0; r < world; ++r) out.emplace_back(EpochPlanOptions{size, 0, batch, r, world, true, seed});
  return out;
}

// Runs `first_steps` steps at (batch0, world0) in epoch `epoch`, then the
// rest of the epoch at (batch1, world1) from the saved cursor; checks that
// the samples seen are the epoch's order up to where the second run stopped
// (no repeat, no gap), and that only fewer than batch1 x world1 of the
// order's last positions are left for later epochs.
void check_resume_changes_shape(int64_t size, int64_t epoch, int batch0, int world0, int first_steps, int batch1,
                                int world1) {
  SCOPED_TRACE(testing::Message() << size << " samples, epoch " << epoch << ": " << world0 << " x " << batch0 << " for "
                                  << first_steps << " steps, then " << world1 << " x " << batch1);
  const uint64_t seed = 7;
  std::vector<int64_t> seen;
  auto before = plans(size, batch0, world0, seed);
  const DataCursor saved = take(before, {epoch, 0}, first_steps, seen);
  ASSERT_EQ(saved, (DataCursor{epoch, int64_t(first_steps) * batch0 * world0}));
  auto after = plans(size, batch1, world1, seed);
  const int64_t g1 = int64_t(batch1) * world1;
  std::vector<int64_t> between;
  const DataCursor end = take(after, saved, size, between);
  EXPECT_EQ(end, (DataCursor{epoch + 1, 0}));
  seen.insert(seen.end(), between.begin(), between.end());

  std::vector<int64_t> order;
  shuffled_order(size, seed, epoch, order);
  const std::set<int64_t> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size()) << "a sample repeated within the epoch";
  const int64_t tail = size - int64_t(seen.size());
  EXPECT_GE(tail, 0);
  EXPECT_LT(tail, g1);
  EXPECT_EQ((saved.sample + int64_t(between.size())), size - tail);
  // The samples seen are exactly the order's first positions, in order; the
  // ones not seen are exactly its last `tail` positions.
  EXPECT_EQ(seen, std::vector<int64_t>(order.begin(), order.begin() + int64_t(seen.size())));
  std::set<int64_t> not_seen;
  for (int64_t i = 0; i < size; ++i)
    if (!unique.count(i)) not_seen.insert(i);
  EXPECT_EQ(not_seen, std::set<int64_t>(order.end() - tail, order.end()));
}

TEST(EpochPlan, ResumingWithAnotherWorldSizeContinuesTheEpochWithoutRepeats) {
  check_resume_changes_shape(103, 0, 4, 2, 5, 4, 3);   // G 8 -> 12: 40 .. 100, tail 3
  check_resume_changes_shape(103, 1, 4, 3, 5, 4, 2);   // G 12 -> 8: 60 .. 100, tail 3
  check_resume_changes_shape(103, 2, 4, 2, 5, 4, 5);   // G 8 -> 20: 40 .. 100, tail 3
  check_resume_changes_shape(103, 0, 4, 2, 11, 4, 5);  // G 8 -> 20 at 88: 15 left, fewer than 20: the epoch is over
}

TEST(EpochPlan, ResumingWithAnotherBatchSizeContinuesTheEpochWithoutRepeats) {
  check_resume_changes_shape(103, 0, 4, 2, 5, 5, 2);  // G 8 -> 10
  check_resume_changes_shape(103, 3, 5, 2, 3, 3, 2);  // G 10 -> 6
  check_resume_changes_shape(103, 0, 4, 2, 5, 3, 3);  // both: G 8 -> 9
}

SyntheticStreamOptions synthetic(int batch, int rank, int world, int64_t samples) {
  SyntheticStreamOptions o;
  o.source = rn::SyntheticOptions{4, 8, 0.5, 3};
  o.batch_size = batch;
  o.rank = rank;
  o.world = world;
  o.samples = samples;
  return o;
}

TEST(SyntheticStream, SampleIndicesNeverRepeatAcrossAWorldSizeChange) {
  const int64_t samples = 100;
  std::set<int64_t> seen;
  auto run = [&](int batch, int world, DataCursor from, int steps) {
    std::vector<SyntheticStream> ranks;
    ranks.reserve(size_t(world));  // batches point into their stream
    for (int r = 0; r < world; ++r) ranks.emplace_back(synthetic(batch, r, world, samples));
    EXPECT_EQ(ranks[0].epoch_size(), samples);
    for (auto& s : ranks) s.start(from);
    for (int i = 0; i < steps; ++i) {
      const DataCursor at = ranks[0].cursor();
      for (auto& s : ranks) {
        EXPECT_EQ(s.cursor(), at);  // the same on every rank
        const Batch& b = s.next();
        EXPECT_EQ(b.at, at);
        EXPECT_EQ(b.n, batch);
        for (int64_t k = 0; k < b.n; ++k) {
          const int64_t index = b.indices[k];
          EXPECT_TRUE(seen.insert(index).second) << "sample " << index << " twice";
          // Epoch e draws from samples [e*n, (e+1)*n).
          EXPECT_GE(index, at.epoch * samples);
          EXPECT_LT(index, (at.epoch + 1) * samples);
        }
      }
    }
    return ranks[0].cursor();
  };
  DataCursor c = run(4, 2, {0, 0}, 5);  // G = 8
  EXPECT_EQ(c, (DataCursor{0, 40}));
  c = run(4, 3, c, 7);  // G = 12: 40, 52, 64, 76, 88, then epoch 1 at 0 and 12
  EXPECT_EQ(c, (DataCursor{1, 24}));
  c = run(5, 1, c, 20);               // G = 5, batch size changed as well: the rest of epoch 1 and into epoch 2
  EXPECT_EQ(c, (DataCursor{2, 25}));  // 15 steps end epoch 1 at 99 (one sample left), then 5 in epoch 2
  EXPECT_EQ(seen.size(), size_t(5 * 8 + 7 * 12 + 20 * 5));
}

TEST(SyntheticStream, EpochSizeAndEvaluationCursor) {
  SyntheticStream small(synthetic(4, 0, 2, 5));  // fewer samples than one global batch: one batch per epoch
  EXPECT_EQ(small.epoch_size(), 8);
  EXPECT_EQ(small.batches_per_epoch(), 1);
  SyntheticStream t(synthetic(4, 0, 2, 20));
  EXPECT_EQ(t.epoch_size(), 20);
  EXPECT_EQ(t.batches_per_epoch(), 2);
  EXPECT_EQ(t.samples_per_epoch(), 16);
  t.start({0, 13});  // 13 + 8 > 20: the next epoch
  EXPECT_EQ(t.cursor(), (DataCursor{1, 0}));
  EXPECT_THROW(t.start({0, 21}), rn::InternalError);

  SyntheticStreamOptions o = synthetic(4, 1, 2, 11);  // rank 1's share: [6, 11)
  o.train = false;
  SyntheticStream e(o);
  EXPECT_EQ(e.batches_per_epoch(), 2);
  e.start({0, 0});
  const Batch& first = e.next();
  EXPECT_EQ(first.at, (DataCursor{0, 0}));
  EXPECT_EQ(first.n, 4);
  EXPECT_EQ(first.indices[0], 6);
  const Batch& last = e.next();
  EXPECT_EQ(last.at, (DataCursor{0, 4}));
  EXPECT_EQ(last.n, 1);
  EXPECT_EQ(last.indices[0], 10);
  EXPECT_THROW(e.next(), rn::InternalError);
  EXPECT_THROW(e.start({0, 2}), rn::InternalError);  // not a batch boundary
}

}  // namespace
