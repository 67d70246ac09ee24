// Whole training runs on the GPU, in-process (run_training with
// train.device = cuda): everything the layer and step tests do not reach
// together (the loader's pinned batches through the upload ring, the loss
// and metrics, periodic checkpoints written from device memory, validation
// on the GPU, resume).
//  * Learning: the CPU suite's small synthetic job (Training.
//    SmallResNetLearnsSyntheticDataAbove90Percent reaches > 0.9 held-out
//    top-1 on the CPU) in bf16 and in fp16 with dynamic loss scaling (few
//    skipped steps). The bar here is 0.8 (chance: 0.1): the low-precision
//    rounding perturbs the trajectory, and a broken upload, loss or update
//    stays near chance. The checkpoint it leaves, evaluated on the CPU in
//    fp32, must score within 0.05 of the GPU's own validation (the same
//    weights; only the rounding of the activations differs).
//  * Resume: with gpu.deterministic, a run stopped after 18 steps and
//    resumed to the end leaves a checkpoint with the same bits as the run
//    that never stopped (the CPU suite's Resume.ExactOnOneRank, on the GPU).
//  * Gradient accumulation: in fp32 with frozen BN, 2 steps of batch 4 x 2
//    micro-batches match 2 steps of batch 8 (the accumulator's copies and
//    additions on the compute stream; the CPU suite's Distributed.
//    AccumulatedMicroBatchesMatchOneProcessWithTheGlobalBatch, on the GPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/gpu/gpu_test_util.h"
#include "tests/unit/checkpoint_compare.h"
#include "tests/unit/training_test_util.h"
#include "trainer/checkpoint/checkpoint_dir.h"
#include "trainer/train/trainer.h"

namespace rn::gpu_test {
namespace {

namespace fs = std::filesystem;

// The CPU suite's small job (training_test_util.h) on the GPU.
Config gpu_job(const std::string& name) {
  Config c = testing_util::small_job("rn_gpu_train_" + name);
  c.train.device = "cuda";
  c.train.precision = "bf16";
  c.checkpoint.every_minutes = 0;
  return c;
}

class GpuTraining : public GpuTestWithParam<std::string> {};

TEST_P(GpuTraining, LearnsAndItsCheckpointScoresTheSameOnTheCpu) {
  Config c = gpu_job("learn_" + GetParam());
  c.train.precision = GetParam();
  const TrainResult r = run_training(c);
  EXPECT_EQ(r.steps, 96);
  EXPECT_GT(r.val_top1, 0.8) << "held-out synthetic accuracy after training in bf16 on the GPU";
  const auto train = testing_util::read_metrics(c.train.output_dir, "train");
  ASSERT_GE(train.size(), 2u);
  EXPECT_LT(train.back()["loss"].get<double>(), 0.5 * train.front()["loss"].get<double>());
  ASSERT_TRUE(train.back().contains("peak_device_mib"));
  EXPECT_GT(train.back()["peak_device_mib"].get<double>(), 0.0);
  if (GetParam() == "fp16") {  // dynamic loss scaling reports its state
    ASSERT_TRUE(train.back().contains("loss_scale"));
    EXPECT_GE(train.back()["loss_scale"].get<double>(), 1.0);
    EXPECT_LT(train.back()["skipped_steps"].get<double>(), 10.0) << "most fp16 steps must not overflow";
  }

  Config on_cpu = c;
  on_cpu.train.device = "cpu";
  on_cpu.train.precision = "auto";
  on_cpu.checkpoint.resume = (fs::path(c.train.output_dir) / "checkpoint.h5").string();
  const EvalResult ev = evaluate_checkpoint(on_cpu);
  EXPECT_EQ(ev.images, 256);
  EXPECT_NEAR(ev.top1, r.val_top1, 0.05) << "the GPU-trained checkpoint evaluated on the CPU";
}

INSTANTIATE_TEST_SUITE_P(MixedPrecision, GpuTraining, ::testing::Values("bf16", "fp16"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_F(GpuTest, DeterministicResumeIsBitIdenticalToTheUninterruptedRun) {
  Config whole = gpu_job("whole");
  whole.gpu.deterministic = true;
  whole.checkpoint.every_steps = 6;
  ASSERT_EQ(run_training(whole).steps, 96);

  Config split = gpu_job("split");
  split.gpu.deterministic = true;
  split.checkpoint.every_steps = 6;
  split.train.max_steps = 18;
  ASSERT_EQ(run_training(split).steps, 18);
  split.train.max_steps = 0;
  split.checkpoint.resume = "auto";
  ASSERT_EQ(run_training(split).steps, 96);

  const auto ck = [](const Config& c) { return (fs::path(c.train.output_dir) / checkpoint_file_name(96)).string(); };
  testing_util::expect_bit_identical(ck(whole), ck(split));
}

TEST_F(GpuTest, AccumulatedMicroBatchesMatchTheWholeBatch) {
  auto job = [](const std::string& name, int batch, int accumulate) {
    Config c = gpu_job(name);
    c.train.precision = "fp32";
    c.gpu.deterministic = true;
    c.model.frozen_bn = true;
    c.optim.lr = 0.5;
    c.data.val_samples = 0;
    c.train.max_steps = 2;
    c.train.batch_size = batch;
    c.train.accumulate = accumulate;
    EXPECT_EQ(run_training(c).steps, 2);
    return testing_util::all_datasets((fs::path(c.train.output_dir) / "checkpoint.h5").string());
  };
  const auto whole = job("acc_whole", 8, 1), split = job("acc_split", 4, 2);
  ASSERT_GT(whole.size(), 40u);
  for (const auto& [name, a] : whole) {
    if (name.rfind("model/", 0) != 0 || name.find("num_batches") != std::string::npos) continue;
    const auto& b = split.at(name);
    ASSERT_EQ(a.size(), b.size()) << name;
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i)
      worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / (1e-3 + std::fabs(double(a[i]))));
    EXPECT_LT(worst, 1e-4) << name;
  }
}

}  // namespace
}  // namespace rn::gpu_test
