// Checkpoints and resume, end to end with the real resnet-train binary:
// exact (bit-identical) resume on 1 and 2 ranks, resume on another number
// of ranks without repeating or skipping a sample, a checkpoint write
// killed midway, keep-last-K, --eval-only, --init-from, and the bad inputs
// that must fail with a clear message while nothing saved is lost.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "checkpoint_compare.h"
#include "process_util.h"
#include "trainer/checkpoint/checkpoint_dir.h"
#include "trainer/checkpoint/checkpoint_reader.h"
#include "trainer/checkpoint/h5_io.h"

namespace {

namespace fs = std::filesystem;
using rn::testing_util::expect_bit_identical;
using rn::testing_util::fresh_dir;
using rn::testing_util::ProcessRun;
using rn::testing_util::run_command;

// cifar-resnet8 on 16x16 synthetic images: 200 samples, 12 steps of 16 per
// epoch on one rank. every_minutes=0: only the step rule and the end save.
// Options given in `args` replace these defaults.
std::string job(const std::string& args) {
  const std::vector<std::string> defaults = {
      "--model.arch=cifar-resnet8", "--data.image_size=16",    "--data.synthetic_samples=200",
      "--data.val_samples=64",      "--train.threads=1",       "--train.log_every=5",
      "--train.epochs=3",           "--optim.schedule=cosine", "--checkpoint.every_minutes=0"};
  std::string out;
  for (const auto& d : defaults)
    if (args.find(d.substr(0, d.find('=') + 1)) == std::string::npos) out += " " + d;
  return out + " " + args;
}

ProcessRun train(const std::string& args, const std::string& env = "") {
  return run_command("env OMP_NUM_THREADS=1 " + env + " " + std::string(RN_BIN_DIR) + "/resnet-train" + job(args));
}

ProcessRun mpi_train(int ranks, const std::string& args, const std::string& env = "") {
  return run_command("env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " + env + " " +
                     RN_MPIEXEC + " --oversubscribe -np " + std::to_string(ranks) +
                     " -x RN_TEST_FAULT -x RN_SAMPLE_LOG " + RN_BIN_DIR + "/resnet-train" + job(args));
}

std::string ck(const std::string& dir, int64_t step) {
  return (fs::path(dir) / rn::checkpoint_file_name(step)).string();
}

// 36 steps in one run vs 18 steps, then --resume auto to the end: every
// weight, BN statistic and momentum buffer is bit-identical.
void exact_resume(int ranks, int batch, int accumulate = 1) {
  const std::string tag = std::to_string(ranks) + "x" + std::to_string(accumulate);
  const std::string a = fresh_dir("rn_resume_a" + tag), b = fresh_dir("rn_resume_b" + tag);
  const std::string common = " --checkpoint.every_steps=6 --train.batch_size=" + std::to_string(batch) +
                             " --train.accumulate=" + std::to_string(accumulate);
  auto go = [&](const std::string& args) {
    return ranks == 1 ? train(common + args) : mpi_train(ranks, common + args);
  };
  const ProcessRun whole = go(" --train.output_dir=" + a);
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  const ProcessRun first = go(" --train.max_steps=18 --train.output_dir=" + b);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_TRUE(fs::exists(ck(b, 18)));
  const ProcessRun rest = go(" --resume auto --train.output_dir=" + b);
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_NE(rest.output.find("at step 18"), std::string::npos) << rest.output;
  const int64_t last = 3 * (200 / (batch * accumulate * ranks));
  expect_bit_identical(ck(a, last), ck(b, last));
}

TEST(Resume, ExactOnOneRank) { exact_resume(1, 16); }
TEST(Resume, ExactOnTwoRanks) { exact_resume(2, 8); }
TEST(Resume, ExactWithGradientAccumulation) { exact_resume(2, 4, 2); }

// Per rank sample logs (RN_SAMPLE_LOG): epoch -> every index used.
std::map<int64_t, std::vector<int64_t>> read_samples(const std::string& prefix, int ranks) {
  std::map<int64_t, std::vector<int64_t>> out;
  for (int r = 0; r < ranks; ++r) {
    std::ifstream in(prefix + ".rank" + std::to_string(r));
    int64_t e, i;
    while (in >> e >> i) out[e].push_back(i);
  }
  return out;
}

// 2 ranks x 8 stop mid-epoch; 3 ranks x 8 continue the same epoch: no
// sample of an epoch is used twice, and the first epoch is complete up to
// the tail shorter than one global batch.
TEST(Resume, AnotherWorldSizeContinuesTheEpochWithoutRepeats) {
  const std::string d = fresh_dir("rn_resume_world"), log = d + "-samples";
  for (int r = 0; r < 3; ++r) fs::remove(log + ".rank" + std::to_string(r));
  const ProcessRun first =
      mpi_train(2, "--train.batch_size=8 --train.max_steps=5 --train.output_dir=" + d, "RN_SAMPLE_LOG=" + log);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const ProcessRun rest = mpi_train(3, "--train.batch_size=8 --train.epochs=2 --resume auto --train.output_dir=" + d,
                                    "RN_SAMPLE_LOG=" + log);
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_NE(rest.output.find("epoch 0 sample 80"), std::string::npos) << rest.output;
  const auto seen = read_samples(log, 3);
  ASSERT_EQ(seen.size(), 2u);
  for (const auto& [epoch, idx] : seen) {
    const std::set<int64_t> unique(idx.begin(), idx.end());
    EXPECT_EQ(unique.size(), idx.size()) << "a sample repeated in epoch " << epoch;
  }
  // Epoch 0: 5 steps of 16, then (200 - 80) / 24 = 5 steps of 24 = 200 samples.
  EXPECT_EQ(seen.at(0).size(), 200u);
  EXPECT_EQ(seen.at(1).size(), 8u * 24u);  // a fresh epoch at 24: 8 steps, a tail of 8 waits
  const auto info = rn::read_checkpoint_info(d + "/checkpoint.h5");
  EXPECT_EQ(info.state.world_size, 3);
  EXPECT_EQ(info.state.rank_cursors.size(), 3u);
  EXPECT_EQ(info.state.step, 5 + 5 + 8);
}

// A checkpoint write killed halfway (SIGKILL) leaves the previous checkpoint
// complete; --resume auto picks it and the run finishes.
TEST(Resume, AWriteKilledMidwayLeavesTheLastGoodCheckpoint) {
  const std::string d = fresh_dir("rn_resume_kill");
  const ProcessRun killed =
      train("--train.batch_size=16 --checkpoint.every_steps=6 --train.output_dir=" + d, "RN_TEST_FAULT=0:12:ckptkill");
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  EXPECT_TRUE(fs::exists(ck(d, 6)));
  EXPECT_FALSE(fs::exists(ck(d, 12)));
  EXPECT_TRUE(fs::exists(fs::path(d) / ".checkpoint-00000012.h5.tmp")) << "the write should have been under way";
  const auto latest = rn::find_latest_checkpoint(d, nullptr);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->path, ck(d, 6));
  const ProcessRun rest =
      train("--train.batch_size=16 --checkpoint.every_steps=6 --resume auto --train.output_dir=" + d);
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_NE(rest.output.find("at step 6"), std::string::npos) << rest.output;
  EXPECT_EQ(rn::read_checkpoint_info(d + "/checkpoint.h5").state.step, 36);
  EXPECT_FALSE(fs::exists(fs::path(d) / ".checkpoint-00000012.h5.tmp")) << "leftover temporary file not cleaned";
}

// A checkpoint cut short under its final name (a copy that failed, a full
// disk) is skipped by --resume auto with a message, and refused by --resume PATH.
TEST(Resume, TruncatedCheckpointIsSkippedByAutoAndRefusedByPath) {
  const std::string d = fresh_dir("rn_resume_trunc");
  ASSERT_EQ(
      train("--train.batch_size=16 --checkpoint.every_steps=6 --train.max_steps=12 --train.output_dir=" + d).exit_code,
      0);
  fs::resize_file(ck(d, 12), fs::file_size(ck(d, 12)) / 2);
  const ProcessRun bad = train("--train.batch_size=16 --resume " + ck(d, 12) + " --train.output_dir=" + d);
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find(ck(d, 12)), std::string::npos) << bad.output;
  EXPECT_TRUE(fs::exists(ck(d, 6)));
  const ProcessRun rest = train("--train.batch_size=16 --train.max_steps=18 --resume auto --train.output_dir=" + d);
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_NE(rest.output.find("skipped"), std::string::npos) << rest.output;
  EXPECT_NE(rest.output.find("at step 6"), std::string::npos) << rest.output;
}

TEST(Resume, KeepsTheLastKAndLinksTheNewest) {
  const std::string d = fresh_dir("rn_resume_keep");
  ASSERT_EQ(
      train("--train.batch_size=16 --checkpoint.every_steps=5 --checkpoint.keep=2 --train.output_dir=" + d).exit_code,
      0);
  std::vector<int64_t> steps;
  for (const auto& e : rn::list_checkpoints(d)) steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{36, 35}));
  EXPECT_TRUE(fs::is_symlink(fs::path(d) / "checkpoint.h5"));
  EXPECT_EQ(fs::read_symlink(fs::path(d) / "checkpoint.h5"), fs::path(rn::checkpoint_file_name(36)));
}

// checkpoint.every_minutes saves on rank 0's clock, agreed by every rank.
TEST(Resume, SavesEveryFewMinutesByTheClock) {
  const std::string d = fresh_dir("rn_resume_clock");
  const ProcessRun r = mpi_train(2,
                                 "--train.batch_size=8 --train.epochs=30 --checkpoint.keep=100 "
                                 "--checkpoint.every_minutes=0.002 --train.log_every=60 --train.output_dir=" +
                                     d);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // 360 steps take about 2 s here, over 15 periods of 0.12 s (6 epochs once
  // took long enough, then only 0.5 s): several timed saves plus the last.
  EXPECT_GE(rn::list_checkpoints(d).size(), 3u) << r.output;
}

// SIGTERM (a scheduler's stop): the step finishes, a checkpoint is saved,
// the exit status is 75 (resumable), and --resume auto finishes the run with the
// same total number of steps.
TEST(Resume, SigtermSavesAndTheRunResumesToTheSameEnd) {
  const std::string d = fresh_dir("rn_resume_term");
  const ProcessRun stopped = run_command("env OMP_NUM_THREADS=1 timeout --preserve-status -s TERM 1.5 " +
                                         std::string(RN_BIN_DIR) + "/resnet-train" +
                                         job("--train.batch_size=4 --train.epochs=40 "
                                             "--train.output_dir=" +
                                             d));
  ASSERT_EQ(stopped.exit_code, 75) << stopped.output;
  EXPECT_NE(stopped.output.find("received signal 15"), std::string::npos) << stopped.output;
  const auto info = rn::read_checkpoint_info(d + "/checkpoint.h5");
  ASSERT_GT(info.state.step, 0);
  EXPECT_LT(info.state.step, 2000);
  const ProcessRun rest = train("--train.batch_size=4 --train.epochs=40 --resume auto --train.output_dir=" + d);
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_EQ(rn::read_checkpoint_info(d + "/checkpoint.h5").state.step, 2000);  // 40 epochs x 50 steps
}

// SIGUSR1 (Slurm's warning before the time limit) sent to mpirun reaches
// both ranks: they stop at the same step, rank 0 saves, and the job exits 75.
TEST(Resume, Sigusr1ToMpirunStopsEveryRankAtTheSameStepWithACheckpoint) {
  const std::string d = fresh_dir("rn_resume_usr1");
  const ProcessRun r = run_command(
      "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 timeout --preserve-status -s "
      "USR1 2.5 " + std::string(RN_MPIEXEC) + " --oversubscribe -np 2 " + RN_BIN_DIR + "/resnet-train" +
      job("--train.batch_size=4 --train.epochs=50 --train.output_dir=" + d));
  ASSERT_EQ(r.exit_code, 75) << r.output;
  EXPECT_NE(r.output.find("received signal 10"), std::string::npos) << r.output;
  const auto info = rn::read_checkpoint_info(d + "/checkpoint.h5");
  EXPECT_GT(info.state.step, 0);
  ASSERT_EQ(info.state.rank_cursors.size(), 2u);
  EXPECT_TRUE(info.state.rank_cursors[0] == info.state.rank_cursors[1]);
}

// A fresh start in a directory with checkpoints moves them aside, so a
// later --resume auto cannot pick a checkpoint of the replaced run.
TEST(Resume, FreshStartSetsOlderCheckpointsAside) {
  const std::string d = fresh_dir("rn_resume_aside");
  ASSERT_EQ(train("--train.batch_size=16 --train.output_dir=" + d).exit_code, 0);
  const ProcessRun again = train("--train.batch_size=16 --train.max_steps=4 --train.output_dir=" + d);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("superseded-"), std::string::npos) << again.output;
  EXPECT_EQ(rn::read_checkpoint_info(d + "/checkpoint.h5").state.step, 4);
  int moved = 0;
  for (const auto& e : fs::directory_iterator(d))
    if (e.is_directory()) moved += int(rn::list_checkpoints(e.path().string()).size());
  EXPECT_EQ(moved, 1);
}

TEST(Resume, MismatchedModelOrSeedFailsNamingTheSetting) {
  const std::string d = fresh_dir("rn_resume_mismatch");
  ASSERT_EQ(train("--train.batch_size=16 --train.max_steps=3 --train.output_dir=" + d).exit_code, 0);
  const std::string path = d + "/checkpoint.h5";
  for (const auto& [args, needle] :
       std::vector<std::pair<std::string, std::string>>{{"--model.arch=cifar-resnet14", "model.arch"},
                                                        {"--model.num_classes=5", "model.num_classes"},
                                                        {"--train.seed=7", "train.seed"},
                                                        {"--data.synthetic_samples=300", "300"}}) {
    const ProcessRun r =
        train("--train.batch_size=16 " + args + " --resume " + path + " --train.output_dir=" + d);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("--init-from"), std::string::npos) << r.output;
  }
  EXPECT_EQ(rn::read_checkpoint_info(path).state.step, 3) << "a failed resume must not touch the checkpoint";
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(d)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"checkpoint-00000003.h5", "checkpoint.h5", "config.ini", "metrics.jsonl",
                                             "train.log"}));
  std::ifstream ini(d + "/config.ini");
  const std::string text((std::istreambuf_iterator<char>(ini)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("arch = cifar-resnet8\n"), std::string::npos) << "config.ini of the run was replaced";
  EXPECT_NE(text.find("seed = 1\n"), std::string::npos) << "config.ini of the run was replaced";
}

TEST(Resume, BadCheckpointFilesFailWithAClearMessageOnEveryRank) {
  const std::string d = fresh_dir("rn_resume_badfiles");
  fs::create_directories(d);
  std::ofstream(d + "/text.h5") << "not hdf5";
  { rn::h5::H5Id f(H5Fcreate((d + "/foreign.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose); }
  for (const auto& [file, needle] :
       std::vector<std::pair<std::string, std::string>>{{d + "/missing.h5", "does not exist"},
                                                        {d + "/text.h5", "not an HDF5 file"},
                                                        {d + "/foreign.h5", "not a resnet-train checkpoint"}}) {
    const ProcessRun r = mpi_train(2, "--train.batch_size=8 --resume " + file + " --train.output_dir=" + d + "/out");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    size_t count = 0;
    for (size_t p = r.output.find(needle); p != std::string::npos; p = r.output.find(needle, p + 1)) ++count;
    EXPECT_EQ(count, 2u) << "each rank should say why: " << r.output;
  }
}

TEST(Resume, EvalOnlyEvaluatesTheCheckpointAndAppendsAMetricsRecord) {
  const std::string d = fresh_dir("rn_resume_eval");
  ASSERT_EQ(train("--train.batch_size=16 --train.output_dir=" + d).exit_code, 0);
  // No --config: the checkpoint's own configuration is used.
  const ProcessRun r = run_command(std::string("env OMP_NUM_THREADS=1 ") + RN_BIN_DIR +
                                   "/resnet-train --eval-only --resume " + d + "/checkpoint.h5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("top1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("on 64 images"), std::string::npos) << r.output;
  std::ifstream in(d + "/metrics.jsonl");
  std::string line, last;
  while (std::getline(in, line)) last = line;
  EXPECT_NE(last.find("\"eval_only\":true"), std::string::npos) << last;
  const ProcessRun none = train("--eval-only --train.output_dir=" + d);
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.output.find("--resume PATH"), std::string::npos) << none.output;
}

// --init-from: weights only, a fresh optimizer and step 0; another class
// count keeps a fresh classifier; a weights-only file cannot be resumed.
TEST(Resume, InitFromLoadsWeightsAndAllowsANewClassifier) {
  const std::string d = fresh_dir("rn_resume_init"), e = fresh_dir("rn_resume_init2");
  ASSERT_EQ(train("--train.batch_size=16 --train.max_steps=3 --train.output_dir=" + d).exit_code, 0);
  const ProcessRun r = train("--train.batch_size=16 --train.max_steps=2 --model.num_classes=4 --init-from " + d +
                             "/checkpoint.h5 --train.output_dir=" + e);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("classifier (fc) is new"), std::string::npos) << r.output;
  const auto info = rn::read_checkpoint_info(e + "/checkpoint.h5");
  EXPECT_EQ(info.state.step, 2);
  EXPECT_EQ(info.num_classes, 4);
  const ProcessRun wrong = train("--train.batch_size=16 --model.arch=cifar-resnet14 --init-from " + d +
                                 "/checkpoint.h5 --train.output_dir=" + e + "-x");
  EXPECT_EQ(wrong.exit_code, 2) << wrong.output;
  EXPECT_NE(wrong.output.find("does not fit this model"), std::string::npos) << wrong.output;
}

}  // namespace
