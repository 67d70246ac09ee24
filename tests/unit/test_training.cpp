// End-to-end training in-process: learning, determinism, schedules.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/unit/training_test_util.h"
#include "trainer/optim/lr_schedule.h"
#include "trainer/train/trainer.h"

namespace {

namespace fs = std::filesystem;

using rn::testing_util::read_metrics;
using rn::testing_util::small_job;

TEST(Training, SmallResNetLearnsSyntheticDataAbove90Percent) {
  const rn::Config c = small_job("rn_test_learn");
  const rn::TrainResult r = rn::run_training(c);
  EXPECT_EQ(r.steps, 96);
  EXPECT_GT(r.val_top1, 0.9) << "held-out synthetic accuracy";
  EXPECT_GT(r.final_top1, 0.9) << "training accuracy of the last window";
  const auto train = read_metrics(c.train.output_dir, "train");
  ASSERT_GE(train.size(), 2u);
  // The loss went down by a lot from the first window (log(10) = 2.3 at chance).
  EXPECT_LT(train.back()["loss"].get<double>(), 0.5 * train.front()["loss"].get<double>());
  for (const char* key : {"step", "epoch", "loss", "top1", "lr", "images_per_sec"})
    EXPECT_TRUE(train.front().contains(key)) << key;
  EXPECT_TRUE(fs::exists(fs::path(c.train.output_dir) / "checkpoint.h5"));
  EXPECT_TRUE(fs::exists(fs::path(c.train.output_dir) / "train.log"));
  EXPECT_TRUE(fs::exists(fs::path(c.train.output_dir) / "config.ini"));
}

TEST(Training, SameSeedAndThreadsGiveBitIdenticalLosses) {
  rn::Config a = small_job("rn_test_det_a");
  a.train.epochs = 1;
  a.train.log_every = 1;
  a.model.arch = "cifar-resnet14";
  rn::Config b = a;
  b.train.output_dir = (fs::temp_directory_path() / "rn_test_det_b").string();
  fs::remove_all(b.train.output_dir);
  rn::run_training(a);
  rn::run_training(b);
  const auto ma = read_metrics(a.train.output_dir, "train"), mb = read_metrics(b.train.output_dir, "train");
  ASSERT_EQ(ma.size(), 32u);
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    // Compare the doubles' bits, not within a tolerance.
    EXPECT_EQ(ma[i]["loss"].get<double>(), mb[i]["loss"].get<double>()) << "step " << i + 1;
  }
  // A different seed changes the run (so the comparison above can fail).
  rn::Config c = a;
  c.train.seed = 2;
  c.train.output_dir = (fs::temp_directory_path() / "rn_test_det_c").string();
  fs::remove_all(c.train.output_dir);
  rn::run_training(c);
  const auto mc = read_metrics(c.train.output_dir, "train");
  EXPECT_NE(ma[0]["loss"].get<double>(), mc[0]["loss"].get<double>());
}

TEST(LrSchedule, WarmupMultistepCosineAndScaling) {
  rn::LrScheduleOptions o;
  o.base_lr = 0.1;
  o.kind = "multistep";
  o.milestones = {30, 60};
  EXPECT_DOUBLE_EQ(rn::LrSchedule(o).at(0), 0.1);
  EXPECT_DOUBLE_EQ(rn::LrSchedule(o).at(29.99), 0.1);
  EXPECT_NEAR(rn::LrSchedule(o).at(30), 0.01, 1e-12);
  EXPECT_NEAR(rn::LrSchedule(o).at(89), 0.001, 1e-12);
  o.kind = "step";
  o.step_epochs = 10;
  EXPECT_NEAR(rn::LrSchedule(o).at(25), 0.001, 1e-12);
  o.kind = "cosine";
  o.total_epochs = 10;
  o.min_lr = 0.0;
  EXPECT_NEAR(rn::LrSchedule(o).at(5), 0.05, 1e-12);
  EXPECT_NEAR(rn::LrSchedule(o).at(10), 0.0, 1e-12);
  o.warmup_epochs = 2;
  o.warmup_start_factor = 0.1;
  EXPECT_NEAR(rn::LrSchedule(o).at(0), 0.01, 1e-12);
  EXPECT_NEAR(rn::LrSchedule(o).at(1), 0.055, 1e-12);
  EXPECT_NEAR(rn::LrSchedule(o).at(2), 0.1, 1e-12);  // cosine starts after warm-up
  EXPECT_DOUBLE_EQ(rn::scaled_lr(0.1, 1024, 256), 0.4);
}

}  // namespace
