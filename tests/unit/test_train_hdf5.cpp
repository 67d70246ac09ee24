// resnet-train on HDF5 shards end to end (the real binaries): a synthetic
// JPEG dataset from resnet-data is learned well above chance, validation
// counts every image once on 1 and 3 ranks, a corrupt image is skipped with
// a warning (and stops the run beyond --max-bad-samples), and a missing or
// mismatched dataset stops every rank before training.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "data/shard_reader.h"
#include "dataset_test_util.h"
#include "process_util.h"
#include "trainer/checkpoint/checkpoint_reader.h"

namespace {

namespace fs = std::filesystem;
using rn::testing_util::fresh_dir;
using rn::testing_util::ProcessRun;
using rn::testing_util::run_command;

// 4 classes of 20x20 JPEGs: 640 training images, 100 validation images
// (not divisible by the batch or by 3 ranks).
struct Datasets {
  std::string train, val;
};
const Datasets& datasets() {
  static const Datasets d = [] {
    // Per process: ctest runs these tests in parallel processes.
    const std::string tag = std::to_string(getpid());
    Datasets d{fresh_dir("rn_h5train_train_" + tag), fresh_dir("rn_h5train_val_" + tag)};
    const std::string synth = std::string(RN_BIN_DIR) + "/resnet-data synth --classes 4 --size 20x20 --shard-size 128 ";
    const ProcessRun a = run_command(synth + "--count 640 --seed 1 --out " + d.train);
    const ProcessRun b = run_command(synth + "--count 100 --seed 1 --split val --out " + d.val);
    EXPECT_EQ(a.exit_code, 0) << a.output;
    EXPECT_EQ(b.exit_code, 0) << b.output;
    return d;
  }();
  return d;
}

// The base job as a config file, so that each test can override any key.
std::string train_args(const Datasets& d) {
  const std::string path = d.train + ".cfg";
  std::ofstream(path) << "[model]\narch = cifar-resnet8\nnum_classes = 4\n"
                      << "[data]\nsource = hdf5\ntrain = " << d.train << "\nval = " << d.val
                      << "\nval_samples = -1\nimage_size = 16\ntrain_augment = scale\nscale_min = 16\n"
                      << "scale_max = 22\nval_resize = 18\nloader_threads = 1\n"
                      << "[optim]\nschedule = cosine\nwarmup_epochs = 0.5\n"
                      << "[train]\nthreads = 1\nbatch_size = 32\nlog_every = 5\n";
  return " --config " + path + " ";
}

ProcessRun train(const std::string& args) {
  return run_command("env OMP_NUM_THREADS=1 " + std::string(RN_BIN_DIR) + "/resnet-train" + train_args(datasets()) +
                     args);
}

ProcessRun mpirun(int ranks, const std::string& args) {
  return run_command("env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " +
                     std::string(RN_MPIEXEC) + " --oversubscribe -np " + std::to_string(ranks) + " " + RN_BIN_DIR +
                     "/resnet-train" + train_args(datasets()) + args);
}

std::vector<nlohmann::json> records(const std::string& dir, const std::string& type) {
  std::vector<nlohmann::json> v;
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == type) v.push_back(j);
  }
  return v;
}

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

TEST(TrainHdf5, LearnsSyntheticJpegsWellAboveChanceAndValidatesEveryImage) {
  const std::string out = fresh_dir("rn_h5train_run");
  const ProcessRun r = train("--train.epochs=6 --optim.lr=0.05 --train.output_dir=" + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("data.train = " + datasets().train + ": 640 images, 4 classes, 5 shard(s)"),
            std::string::npos)
      << r.output;
  const auto evals = records(out, "eval");
  ASSERT_EQ(evals.size(), 6u);
  for (const auto& e : evals) EXPECT_EQ(e["val_images"], 100);
  EXPECT_GT(evals.back()["val_top1"].get<double>(), 0.6) << r.output;  // chance: 0.25
  EXPECT_DOUBLE_EQ(evals.back()["val_top5"].get<double>(), 1.0);       // 4 classes
  const auto steps = records(out, "train");
  ASSERT_FALSE(steps.empty());
  EXPECT_TRUE(steps.back().contains("data_wait_ms"));
  EXPECT_EQ(steps.back()["step"], 6 * 20);  // 640 / 32 steps per epoch

  // The checkpoint carries the manifest's class names, and --eval-only with
  // the checkpoint's own config reproduces the final validation exactly.
  EXPECT_EQ(rn::read_checkpoint_info(out + "/checkpoint.h5").state.class_names,
            rn::shards::ShardReader(datasets().train).manifest().class_names);
  const ProcessRun ev = rn::testing_util::run_command("env OMP_NUM_THREADS=2 " + std::string(RN_BIN_DIR) +
                                                      "/resnet-train --eval-only --resume " + out + "/checkpoint.h5");
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  const auto again = records(out, "eval");
  ASSERT_EQ(again.size(), 7u);
  EXPECT_EQ(again.back()["eval_only"], true);
  EXPECT_EQ(again.back()["val_images"], 100);
  EXPECT_DOUBLE_EQ(again.back()["val_top1"].get<double>(), evals.back()["val_top1"].get<double>());
  EXPECT_NEAR(again.back()["val_loss"].get<double>(), evals.back()["val_loss"].get<double>(), 1e-9);
}

TEST(TrainHdf5, ThreeRanksValidateEachImageExactlyOnce) {
  const std::string out = fresh_dir("rn_h5train_mpi");
  const ProcessRun r = mpirun(3, "--train.epochs=1 --train.batch_size=8 --train.output_dir=" + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto evals = records(out, "eval");
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_EQ(evals[0]["val_images"], 100);
  EXPECT_EQ(records(out, "train").back()["step"], 640 / 24);  // full global batches of 3 x 8
}

TEST(TrainHdf5, TenCropValidationRuns) {
  const std::string out = fresh_dir("rn_h5train_tencrop");
  const ProcessRun r = train("--train.max_steps=2 --data.val_augment=tencrop --train.output_dir=" + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(records(out, "eval").back()["val_images"], 100);
}

TEST(TrainHdf5, CorruptImageIsSkippedWithAWarningAndTheLimitStopsTheRun) {
  // A copy of the training set with sample 3 of shard 1 destroyed.
  const std::string bad = fresh_dir("rn_h5train_corrupt");
  fs::copy(datasets().train, bad);
  rn::testing_util::corrupt_jpeg_in_shard(bad, 1, rn::shards::ShardReader(bad).read(128 + 3).data);
  const std::string args = "--data.train=" + bad + " --data.val_samples=0 --train.epochs=1 --train.output_dir=";
  const ProcessRun ok = train(args + fresh_dir("rn_h5train_corrupt_ok"));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("warning: data.train: skipped the corrupt image at shard-00001.h5 index 3 (sample 131)"),
            std::string::npos)
      << ok.output;

  const std::string out = fresh_dir("rn_h5train_corrupt_stop");
  const ProcessRun stop = train(args + out + " --max-bad-samples=0");
  EXPECT_EQ(stop.exit_code, 2) << stop.output;
  EXPECT_NE(stop.output.find("shard-00001.h5 index 3"), std::string::npos) << stop.output;
  EXPECT_NE(stop.output.find("data.max_bad_samples = 0"), std::string::npos) << stop.output;
}

TEST(TrainHdf5, MissingDatasetStopsEveryRankBeforeTraining) {
  const std::string out = fresh_dir("rn_h5train_missing");
  const ProcessRun r = mpirun(2, "--data.train=/nonexistent/train-shards --train.output_dir=" + out);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_GE(count(r.output, "/nonexistent/train-shards"), 2u) << r.output;  // rank 0 and rank 1
  EXPECT_FALSE(fs::exists(fs::path(out) / "checkpoint.h5"));
}

TEST(TrainHdf5, ClassCountMismatchSaysWhatToChange) {
  const ProcessRun r = train("--model.num_classes=10 --train.output_dir=" + fresh_dir("rn_h5train_classes"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("has 4 classes but model.num_classes = 10"), std::string::npos) << r.output;
}

}  // namespace
