// resnet-train under mpiexec: data-parallel training end to end, the step
// trace showing overlap, equivalence with one process on the whole batch,
// and failures (a rank that throws, a rank that hangs) taking the job down
// with a message naming the rank instead of hanging.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "process_util.h"

namespace {

using rn::testing_util::fresh_dir;
using rn::testing_util::ProcessRun;
using rn::testing_util::run_command;

// A small, fast CPU job: cifar-resnet8 on 16x16 synthetic images.
const std::string kTiny =
    " --model.arch=cifar-resnet8 --data.image_size=16 --data.synthetic_samples=256"
    " --train.threads=1 --train.log_every=2";

ProcessRun mpirun(int ranks, const std::string& env, const std::string& args) {
  return run_command("env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " + env + " " +
                     RN_MPIEXEC + " --oversubscribe -np " + std::to_string(ranks) + " -x RN_TEST_FAULT " + RN_BIN_DIR +
                     "/resnet-train" + kTiny + " " + args);
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> v;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line));
  return v;
}

std::vector<float> read_dataset(const std::string& file, const std::string& name) {
  std::vector<float> v;
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return v;
  const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  if (d >= 0) {
    const hid_t sp = H5Dget_space(d);
    v.resize(size_t(H5Sget_simple_extent_npoints(sp)));
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Sclose(sp);
    H5Dclose(d);
  }
  H5Fclose(f);
  return v;
}

// The weights of a few layers (a conv of the stem and of a block, a BN, the
// classifier) in two runs' checkpoints agree to `tol`, relative (with a
// 1e-3 floor for weights near 0).
void expect_same_weights(const std::string& dir_a, const std::string& dir_b, double tol, const std::string& what) {
  for (const char* name : {"conv1.weight", "layer1.0.conv2.weight", "layer3.0.bn1.bias", "fc.weight", "fc.bias"}) {
    const auto a = read_dataset(dir_a + "/checkpoint.h5", std::string("model/") + name),
               b = read_dataset(dir_b + "/checkpoint.h5", std::string("model/") + name);
    ASSERT_EQ(a.size(), b.size()) << what << " " << name;
    ASSERT_FALSE(a.empty()) << what << " " << name;
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i)
      worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / (1e-3 + std::fabs(double(a[i]))));
    EXPECT_LT(worst, tol) << what << " " << name;
  }
}

TEST(Distributed, TwoRanksTrainWriteOnceAndShowOverlapInTheTrace) {
  const std::string dir = fresh_dir("rn_dist_train");
  const ProcessRun r = mpirun(2, "",
                              "--train.epochs=2 --train.batch_size=16 --comm.bucket_mb=0.02 --data.val_samples=64 "
                              "--train.trace_steps=8 --train.output_dir=" +
                                  dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 rank(s) x batch 16 = 32"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("data parallel: ring all-reduce on host memory"), std::string::npos) << r.output;
  // Only rank 0 prints: the start line appears once.
  EXPECT_EQ(r.output.find("resnet-train 0."), r.output.rfind("resnet-train 0.")) << r.output;

  const auto m = read_jsonl(dir + "/metrics.jsonl");
  ASSERT_FALSE(m.empty());
  int train_records = 0;
  for (const auto& rec : m)
    if (rec["type"] == "train") {
      ++train_records;
      EXPECT_EQ(rec["ranks"], 2);
      EXPECT_GE(rec["comm_exposed_ms"].get<double>(), 0.0);
    }
  EXPECT_EQ(train_records, 8);  // 16 steps, a record every 2
  EXPECT_TRUE(std::filesystem::exists(dir + "/checkpoint.h5"));

  // The trace: in some step, bucket 0's all-reduce began before backward ended.
  std::ifstream tin(dir + "/trace.json");
  const auto trace = nlohmann::json::parse(tin)["traceEvents"];
  int overlapped_steps = 0, buckets_seen = 0;
  for (int step = 1; step <= 8; ++step) {
    double backward_end = -1, bucket0_start = -1;
    for (const auto& e : trace) {
      if (e["ph"] != "X" || e["args"]["step"] != step) continue;
      if (e["name"] == "backward") backward_end = e["ts"].get<double>() + e["dur"].get<double>();
      if (e["name"] == "allreduce bucket 0") bucket0_start = e["ts"].get<double>();
      if (std::string(e["name"]).rfind("allreduce bucket", 0) == 0) ++buckets_seen;
    }
    ASSERT_GE(backward_end, 0) << "step " << step << " missing from the trace";
    if (bucket0_start >= 0 && bucket0_start < backward_end) ++overlapped_steps;
  }
  EXPECT_GE(buckets_seen, 8 * 3) << "expected several buckets per step";
  EXPECT_GE(overlapped_steps, 1) << "no step started an all-reduce before backward ended";
}

// One step of 2 ranks x batch 4 = one process with batch 8 (frozen BN makes
// the loss a mean over independent samples).
TEST(Distributed, TwoRanksMatchOneProcessWithTheGlobalBatch) {
  const std::string common = " --train.max_steps=1 --data.val_samples=0 --model.frozen_bn=true --optim.lr=0.5";
  const std::string d1 = fresh_dir("rn_dist_eq1"), d2 = fresh_dir("rn_dist_eq2");
  const ProcessRun one = run_command(std::string(RN_BIN_DIR) + "/resnet-train" + kTiny + common +
                                     " --train.batch_size=8 --train.output_dir=" + d1);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  for (const char* algo : {"ring", "mpi"}) {
    const ProcessRun two = mpirun(
        2, "",
        common + " --train.batch_size=4 --comm.bucket_mb=0.01 --allreduce=" + algo + " --train.output_dir=" + d2);
    ASSERT_EQ(two.exit_code, 0) << two.output;
    expect_same_weights(d1, d2, 2e-5, algo);
  }
}

// Gradient accumulation: 2 steps of 1 rank x batch 2 x 4 micro-batches, and
// of 2 ranks x batch 2 x 2 (ring, overlapped with the last micro-batch's
// backward from the second step), are 2 steps of one process with batch 8.
// Two steps compound rounding a little, hence a looser bound than above;
// a step that lost or doubled a micro-batch misses it by orders of magnitude.
TEST(Distributed, AccumulatedMicroBatchesMatchOneProcessWithTheGlobalBatch) {
  const std::string common = " --train.max_steps=2 --data.val_samples=0 --model.frozen_bn=true --optim.lr=0.5";
  const std::string d1 = fresh_dir("rn_acc_eq1"), d2 = fresh_dir("rn_acc_eq2"), d3 = fresh_dir("rn_acc_eq3");
  const ProcessRun one = run_command(std::string(RN_BIN_DIR) + "/resnet-train" + kTiny + common +
                                     " --train.batch_size=8 --train.output_dir=" + d1);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const ProcessRun alone = run_command(std::string(RN_BIN_DIR) + "/resnet-train" + kTiny + common +
                                       " --train.batch_size=2 --train.accumulate=4 --train.output_dir=" + d2);
  ASSERT_EQ(alone.exit_code, 0) << alone.output;
  EXPECT_NE(alone.output.find("1 rank(s) x batch 2 x 4 accumulated = 8"), std::string::npos) << alone.output;
  expect_same_weights(d1, d2, 1e-4, "1 rank x 4 micro-batches");
  const ProcessRun two = mpirun(
      2, "", common + " --train.batch_size=2 --train.accumulate=2 --comm.bucket_mb=0.01 --train.output_dir=" + d3);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("2 rank(s) x batch 2 x 2 accumulated = 8"), std::string::npos) << two.output;
  expect_same_weights(d1, d3, 1e-4, "2 ranks x 2 micro-batches");
}

// A rank that throws, at the start of a step or after backward with its
// gradient buckets in flight, ends the job at once (well before the 60 s
// comm timeout) with its message.
TEST(Distributed, ARankThatThrowsEndsTheJobNamingTheRank) {
  for (const char* kind : {"throw", "backward"}) {
    const auto t0 = std::chrono::steady_clock::now();
    const ProcessRun r = mpirun(3, std::string("RN_TEST_FAULT=2:3:") + kind,
                                "--train.epochs=1 --train.batch_size=8 --comm.timeout=60 --comm.bucket_mb=0.01 "
                                "--train.output_dir=" +
                                    fresh_dir("rn_dist_throw"));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.exit_code, 1) << kind << ": " << r.output;
    EXPECT_NE(r.output.find("resnet-train[rank 2]: internal error: injected test fault on rank 2 at step 3"),
              std::string::npos)
        << kind << ": " << r.output;
    EXPECT_LT(secs, 30) << kind << ": the job should end at once, not wait for the timeout";
  }
}

TEST(Distributed, AHungRankIsReportedAfterTheCommTimeout) {
  const ProcessRun r =
      mpirun(3, "RN_TEST_FAULT=0:3:hang",
             "--train.epochs=1 --train.batch_size=8 --comm-timeout=2 --train.output_dir=" + fresh_dir("rn_dist_hang"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("made no progress for 2 s (comm.timeout): rank 0 never sent its data"), std::string::npos)
      << r.output;
}

TEST(Distributed, ConfigErrorsAreReportedByEveryRank) {
  const ProcessRun r = mpirun(2, "", "--optim.lr=-1 --train.output_dir=" + fresh_dir("rn_dist_cfg"));
  EXPECT_NE(r.exit_code, 0);
  size_t count = 0;
  for (size_t p = r.output.find("optim.lr"); p != std::string::npos; p = r.output.find("optim.lr", p + 1)) ++count;
  EXPECT_GE(count, 2u) << r.output;
}

// --device cuda where there is no GPU: each rank says so itself and the job
// ends with exit 2 (an agreed start-up error, no MPI_Abort).
TEST(Distributed, MissingGpuIsReportedByEveryRank) {
  const std::string dir = fresh_dir("rn_dist_nogpu");
  const ProcessRun r = mpirun(2, "", "--device cuda --train.output_dir=" + dir);
  if (r.exit_code == 0) GTEST_SKIP() << "a GPU is visible here";
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const char* rank : {"rank 0", "rank 1"})
    EXPECT_NE(r.output.find(rank), std::string::npos) << "no message from " << rank << ":\n" << r.output;
  EXPECT_NE(r.output.find("--device cpu"), std::string::npos) << r.output;
}

}  // namespace

namespace {

// Compressed gradients: bf16 and fp16 on the wire, three ranks, the weight
// hash compared after every step (replicas must stay bit-identical).
TEST(Distributed, HalfPrecisionWireKeepsReplicasIdentical) {
  for (const char* dt : {"bf16", "fp16"}) {
    const ProcessRun r = mpirun(3, "",
                                std::string("--train.epochs=1 --train.batch_size=8 --comm.check_weights_every=1 "
                                            "--comm.bucket_mb=0.05 --comm.dtype=") +
                                    dt + " --train.output_dir=" + fresh_dir("rn_dist_half"));
    EXPECT_EQ(r.exit_code, 0) << dt << ": " << r.output;
    EXPECT_NE(r.output.find(std::string(dt) + " on the wire"), std::string::npos) << r.output;
  }
}

}  // namespace
