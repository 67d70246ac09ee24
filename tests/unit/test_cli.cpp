// The real resnet-train binary: bad input fails before any work, with a
// message naming the key, and a non-zero exit; --help and --summary work.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "process_util.h"

namespace {

namespace fs = std::filesystem;

using rn::testing_util::ProcessRun;

ProcessRun run(const std::string& args) {
  return rn::testing_util::run_command(std::string(RN_BIN_DIR) + "/resnet-train " + args);
}

std::string out_dir(const std::string& name) { return rn::testing_util::fresh_dir(name); }

void expect_config_error(const std::string& args, const std::vector<std::string>& needles) {
  const std::string dir = out_dir("rn_cli_err");
  const ProcessRun r = run(args + " --train.output_dir=" + dir);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in: " << r.output;
  EXPECT_FALSE(fs::exists(dir)) << "a bad config must fail before any work";
}

TEST(Cli, NegativeLearningRate) { expect_config_error("--optim.lr=-0.1", {"optim.lr", "> 0"}); }
TEST(Cli, ZeroBatch) { expect_config_error("--train.batch_size=0", {"train.batch_size", ">= 1"}); }
TEST(Cli, UnknownArchitecture) { expect_config_error("--model.arch=resnet51", {"model.arch", "resnet51", "resnet50"}); }
TEST(Cli, MisspelledKeySuggestsTheRightOne) { expect_config_error("--optim.lrr=0.1", {"optim.lrr", "did you mean", "optim.lr"}); }
TEST(Cli, WrongType) { expect_config_error("--optim.lr=fast", {"optim.lr", "fast"}); }
TEST(Cli, MissingConfigFile) { expect_config_error("--config /nonexistent/x.cfg", {"/nonexistent/x.cfg"}); }

TEST(Cli, MisspelledKeyInsideAConfigFile) {
  const auto path = fs::temp_directory_path() / "rn_cli_bad.cfg";
  std::ofstream(path) << "[optim]\nmomentun = 0.9\n";
  expect_config_error("--config " + path.string(), {"optim.momentun", path.string(), "optim.momentum"});
}

TEST(Cli, HelpListsEveryOptionWithDefaults) {
  const ProcessRun r = run("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* key : {"model.arch", "optim.lr", "optim.milestones", "train.batch_size", "data.source", "--summary"})
    EXPECT_NE(r.output.find(key), std::string::npos) << key;
}

TEST(Cli, SummaryOfResnet152) {
  const ProcessRun r = run("--summary --model.arch=resnet152");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("60192808"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("layer3.35"), std::string::npos);
}

TEST(Cli, ImagenetConfigWithoutItsDatasetNamesTheMissingDirectory) {
  const ProcessRun r = run("--config " + std::string(RN_SOURCE_DIR) + "/configs/resnet50.cfg --train.output_dir=" +
                    out_dir("rn_cli_h5"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("/path/to/imagenet-shards/train"), std::string::npos) << r.output;
}

TEST(Cli, DemoConfigTrainsAndLeavesACheckpoint) {
  const std::string dir = out_dir("rn_cli_demo");
  const ProcessRun r = run("--config " + std::string(RN_SOURCE_DIR) + "/configs/demo.cfg --train.max_steps=5 --train.output_dir=" + dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(fs::path(dir) / "checkpoint.h5"));
  EXPECT_NE(r.output.find("step 5/5"), std::string::npos) << r.output;
}

}  // namespace

namespace {

// train.device = cuda where it cannot run: the message says why and what to
// do, the exit is 2, and nothing is written. (On a GPU machine the first
// case trains instead, so it only asserts where no GPU is visible.)
TEST(CliDevice, CudaWithoutAGpuFailsClearlyBeforeAnyWork) {
  const std::string dir = out_dir("rn_cli_cuda");
  const ProcessRun r = run("--device cuda --train.max_steps=1 --train.output_dir=" + dir);
  if (r.exit_code == 0) GTEST_SKIP() << "a GPU is visible here: this test is about machines without one";
  EXPECT_TRUE(rn::testing_util::failed_for_want_of_a_gpu(r));
  EXPECT_FALSE(fs::exists(dir)) << "a run that cannot have its device must fail before any work";
}

TEST(CliDevice, TooOldCudnnIsNamedWithTheVersionNeeded) {
  const std::string dir = out_dir("rn_cli_cudnn");
  const ProcessRun r = rn::testing_util::run_command("RN_TEST_CUDNN_VERSION=8907 " + std::string(RN_BIN_DIR) +
                                                     "/resnet-train --device cuda --train.max_steps=1 "
                                                     "--train.output_dir=" +
                                                     dir);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  if (r.output.find("without the CUDA backend") != std::string::npos) GTEST_SKIP() << "built without CUDA";
  EXPECT_NE(r.output.find("cuDNN >= 9.0.0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("8.9.7"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir));
}

TEST(CliDevice, GpuOnlySettingsOnTheCpuAreRefused) {
  expect_config_error("--precision bf16", {"train.precision", "train.device = cuda"});
  expect_config_error("--allreduce nccl", {"comm.allreduce = nccl", "train.device = cuda"});
  expect_config_error("--device cuda --comm.dtype=bf16", {"comm.dtype", "fp32"});
  expect_config_error("--device gpu", {"train.device", "cuda"});
  expect_config_error("--gpu.loss_scale=1000", {"gpu.loss_scale", "power of two"});
  expect_config_error("--gpu.conv_algo=fastest", {"gpu.conv_algo", "heuristic", "find"});
}

}  // namespace
