// The real resnet-infer binary: top-k classes of JPEG files (text and JSON,
// class names from the checkpoint, a dataset, or none), HDF5 batch inference
// (shapes, a short last batch, agreement with the JPEG path), and every bad
// input failing with exit 2 and a message naming the file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "data/shard_writer.h"
#include "infer_test_util.h"
#include "process_util.h"
#include "trainer/infer/checkpoint_model.h"
#include "trainer/infer/image_input.h"

namespace {

namespace fs = std::filesystem;
using namespace rn::testing_util;

ProcessRun infer(const std::string& args) {
  return run_command(std::string(RN_BIN_DIR) + "/resnet-infer --threads 1 " + args);
}

void expect_error(const ProcessRun& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("resnet-infer: error: "), std::string::npos) << r.output;
  for (const auto& n : needles)
    EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in: " << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one line: " << r.output;
}

TEST(InferCli, TopFiveOfJpegsWithTheCheckpointsClassNames) {
  const std::string dir = infer_dir("top5");
  const std::string ck = make_infer_checkpoint(dir, true);
  write_jpeg_file(dir + "/a.jpg", 40, 30, 1);
  write_jpeg_file(dir + "/b.jpg", 25, 50, 2);
  const ProcessRun r = infer("--checkpoint " + ck + " " + dir + "/a.jpg " + dir + "/b.jpg");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  std::string line;
  for (const std::string image : {"a.jpg", "b.jpg"}) {
    std::getline(lines, line);
    EXPECT_EQ(line, dir + "/" + image);
    double sum = 0, last = 1;
    for (int rank = 1; rank <= 5; ++rank) {
      std::getline(lines, line);
      ASSERT_EQ(line.rfind("  " + std::to_string(rank) + ". ", 0), 0u) << line;
      const double p = std::stod(line.substr(5, 6));
      EXPECT_LE(p, last + 1e-9);
      last = p;
      sum += p;
      const std::string name = line.substr(line.rfind(' ') + 1);
      EXPECT_NE(std::find(kInferNames.begin(), kInferNames.end(), name), kInferNames.end()) << line;
    }
    EXPECT_LE(sum, 1.0001);
  }
  EXPECT_FALSE(std::getline(lines, line)) << r.output;
}

TEST(InferCli, JsonAgreesWithHdf5LogitsOfTheSamePreprocessing) {
  const std::string dir = infer_dir("json");
  const std::string ck = make_infer_checkpoint(dir, false);
  write_jpeg_file(dir + "/a.jpg", 200, 150, 3);  // large enough for a scaled decode
  const ProcessRun r = infer("--json --top 6 --checkpoint " + ck + " " + dir + "/a.jpg");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["step"], 42);
  ASSERT_EQ(j["images"].size(), 1u);
  const auto& top = j["images"][0]["top"];
  ASSERT_EQ(top.size(), 6u);
  EXPECT_EQ(top[0]["name"], "class " + std::to_string(top[0]["class"].get<int>()));

  // The same preprocessing in-process, then the HDF5 path of the binary.
  rn::BackendOptions cpu;
  cpu.threads = 1;
  rn::CheckpointModel model(ck, 1, cpu);
  rn::ImageInput input(model.preprocessing());
  std::vector<float> image(size_t(input.floats()));
  input.load(dir + "/a.jpg", image.data());
  write_h5(dir + "/x.h5", "images", {1, 3, kInferImageSize, kInferImageSize}, image);
  const ProcessRun b = infer("--checkpoint " + ck + " --input " + dir + "/x.h5 --output " + dir + "/y.h5");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  const Logits l = read_logits(dir + "/y.h5");
  double zmax = -1e30, sum = 0;
  for (float z : l.values) zmax = std::max(zmax, double(z));
  for (float z : l.values) sum += std::exp(double(z) - zmax);
  for (const auto& t : top)
    EXPECT_NEAR(t["prob"].get<double>(), std::exp(double(l.values[t["class"].get<size_t>()]) - zmax) / sum, 1e-6);
}

TEST(InferCli, ClassNamesFromADataset) {
  const std::string dir = infer_dir("classes");
  const std::string ck = make_infer_checkpoint(dir, true);
  rn::shards::ShardWriterOptions o;
  o.dir = dir + "/data";
  o.layout = Layout::kJpeg;
  o.num_classes = kInferClasses;
  o.class_names = {"n0 zero", "n1 one", "n2 two", "n3 three", "n4 four", "n5 five"};
  rn::shards::ShardWriter w(o);
  w.add_jpeg(rn::encode_jpeg(test_image(8, 8, 0).data(), 8, 8), 0);
  w.finish();
  write_jpeg_file(dir + "/a.jpg", 20, 20, 4);
  const ProcessRun r = infer("--top 6 --classes " + o.dir + " --checkpoint " + ck + " " + dir + "/a.jpg");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto& n : o.class_names) EXPECT_NE(r.output.find("  " + n + "\n"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("cat"), std::string::npos) << r.output;
}

TEST(InferCli, Hdf5ShapesAndAShortLastBatch) {
  const std::string dir = infer_dir("h5");
  const std::string ck = make_infer_checkpoint(dir, false);
  const int n = 5, s = 20;  // any size the model takes, not only data.image_size
  write_h5(dir + "/x.h5", "images", {n, 3, s, s}, test_floats(n * 3 * s * s, 1));
  const ProcessRun a = infer("--batch 2 --checkpoint " + ck + " --input " + dir + "/x.h5 --output " + dir + "/y2.h5");
  const ProcessRun b = infer("--batch 8 --checkpoint " + ck + " --input " + dir + "/x.h5 --output " + dir + "/y8.h5");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  const Logits l2 = read_logits(dir + "/y2.h5"), l8 = read_logits(dir + "/y8.h5");
  EXPECT_EQ(l2.dims, (std::vector<int64_t>{n, kInferClasses}));
  EXPECT_EQ(l2.step, 42);
  EXPECT_EQ(l2.checkpoint, ck);
  // Eval-mode BN: an image's logits do not depend on its batch or the padding.
  float scale = 0;
  for (float v : l8.values) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < l2.values.size(); ++i) EXPECT_NEAR(l2.values[i], l8.values[i], 1e-5f * scale) << i;
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();
}

TEST(InferCli, HelpAndVersion) {
  const ProcessRun h = infer("--help");
  EXPECT_EQ(h.exit_code, 0);
  for (const char* opt : {"--checkpoint", "--input", "--output", "--batch", "--classes", "--json", "--threads"})
    EXPECT_NE(h.output.find(opt), std::string::npos) << opt;
  const ProcessRun v = infer("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.output, "resnet-infer " RN_VERSION "\n");
}

TEST(InferCli, BadCheckpoints) {
  const std::string dir = infer_dir("badck");
  const std::string ck = make_infer_checkpoint(dir, false);
  write_jpeg_file(dir + "/a.jpg", 20, 20, 1);
  const std::string img = " " + dir + "/a.jpg";
  expect_error(infer("--checkpoint " + dir + "/none.h5" + img), {dir + "/none.h5", "does not exist"});

  fs::copy_file(ck, dir + "/cut.h5");
  fs::resize_file(dir + "/cut.h5", fs::file_size(ck) / 2);
  expect_error(infer("--checkpoint " + dir + "/cut.h5" + img), {dir + "/cut.h5"});

  write_h5(dir + "/foreign.h5", "images", {1}, {0.f});
  expect_error(infer("--checkpoint " + dir + "/foreign.h5" + img), {dir + "/foreign.h5", "not a resnet-train"});

  fs::copy_file(ck, dir + "/incomplete.h5");
  edit_shard(dir + "/incomplete.h5", [](hid_t f) { rn::h5::set_attr(f, "complete", int64_t(0)); });
  expect_error(infer("--checkpoint " + dir + "/incomplete.h5" + img), {dir + "/incomplete.h5", "incomplete"});
}

TEST(InferCli, BadImages) {
  const std::string dir = infer_dir("badimg");
  const std::string ck = " --checkpoint " + make_infer_checkpoint(dir, false) + " ";
  write_jpeg_file(dir + "/good.jpg", 20, 20, 1);
  expect_error(infer(ck + dir + "/good.jpg " + dir + "/missing.jpg"), {dir + "/missing.jpg", "does not exist"});
  std::ofstream(dir + "/fake.jpg") << "\x89PNG\r\n\x1a\n not a jpeg";
  expect_error(infer(ck + dir + "/fake.jpg"), {dir + "/fake.jpg", "JPEG"});
  std::ofstream(dir + "/empty.jpg").flush();
  expect_error(infer(ck + dir + "/empty.jpg"), {dir + "/empty.jpg", "JPEG"});
  // In the last of three batches: nothing is printed for the good ones.
  const std::string good = dir + "/good.jpg ";
  expect_error(infer("--batch 2" + ck + good + good + good + good + dir + "/fake.jpg"), {dir + "/fake.jpg", "JPEG"});
  expect_error(infer("--json --batch 2" + ck + good + good + good + good + dir + "/fake.jpg"), {dir + "/fake.jpg"});
}

TEST(InferCli, BadHdf5InputAndOutput) {
  const std::string dir = infer_dir("badh5");
  const std::string ck = " --checkpoint " + make_infer_checkpoint(dir, false);
  auto run = [&](const std::string& in, const std::string& out) {
    return infer(ck + " --input " + in + " --output " + out);
  };
  const std::string out = dir + "/y.h5";
  expect_error(run(dir + "/none.h5", out), {dir + "/none.h5", "does not exist"});
  std::ofstream(dir + "/text.h5") << "not hdf5";
  expect_error(run(dir + "/text.h5", out), {dir + "/text.h5", "not an HDF5 file"});
  write_h5(dir + "/noimages.h5", "pixels", {1, 3, 16, 16}, test_floats(768, 0));
  expect_error(run(dir + "/noimages.h5", out), {dir + "/noimages.h5", "no dataset 'images'"});
  write_h5(dir + "/rank3.h5", "images", {3, 16, 16}, test_floats(768, 0));
  expect_error(run(dir + "/rank3.h5", out), {dir + "/rank3.h5", "(3, 16, 16)", "(N, 3, H, W)"});
  write_h5(dir + "/gray.h5", "images", {2, 1, 16, 16}, test_floats(512, 0));
  expect_error(run(dir + "/gray.h5", out), {dir + "/gray.h5", "(2, 1, 16, 16)", "channels"});
  write_h5(dir + "/tiny.h5", "images", {1, 3, 4, 4}, test_floats(48, 0));
  expect_error(run(dir + "/tiny.h5", out), {dir + "/tiny.h5", "4x4", "8x8"});
  write_h5(dir + "/x.h5", "images", {1, 3, 16, 16}, test_floats(768, 0));
  expect_error(run(dir + "/x.h5", "/nonexistent-dir/y.h5"), {"/nonexistent-dir/y.h5", "writable"});
  EXPECT_FALSE(fs::exists(out));
}

TEST(InferCli, UsageErrors) {
  const std::string dir = infer_dir("usage");
  const std::string ck = make_infer_checkpoint(dir, false);
  expect_error(infer(dir + "/a.jpg"), {"--checkpoint"});
  expect_error(infer("--checkpoint " + ck), {"nothing to classify"});
  expect_error(infer("--checkpoint " + ck + " --input " + dir + "/x.h5"), {"--output"});
  expect_error(infer("--checkpoint " + ck + " --batch 0 a.jpg"), {"--batch"});
  expect_error(infer("--checkpoint " + ck + " --classes " + dir + "/nodata a.jpg"), {dir + "/nodata"});
  expect_error(infer("--checkpoint " + ck + " --bogus a.jpg"), {"--bogus"});
  expect_error(infer("--checkpoint " + ck + " --device tpu a.jpg"), {"--device", "cpu or cuda", "tpu"});
  expect_error(infer("--checkpoint " + ck + " --precision fp8 a.jpg"), {"--precision", "fp8"});
  expect_error(infer("--checkpoint " + ck + " --precision bf16 a.jpg"), {"--precision bf16", "--device cuda"});
  expect_error(infer("--checkpoint " + ck + " --device cuda --gpu -1 a.jpg"), {"--gpu", "-1"});
}

// --device cuda where no GPU can be had: exit 2 with the reason and the way
// out, before any image is read (on a GPU machine it classifies instead, so
// it only asserts where no GPU is visible; tests/gpu compares the logits).
TEST(InferCli, CudaWithoutAGpuFailsClearly) {
  const std::string dir = infer_dir("cuda");
  const std::string ck = make_infer_checkpoint(dir, false);
  const ProcessRun r = infer("--checkpoint " + ck + " --device cuda " + dir + "/missing.jpg");
  if (r.exit_code == 0) GTEST_SKIP() << "a GPU is visible here: this test is about machines without one";
  EXPECT_TRUE(rn::testing_util::failed_for_want_of_a_gpu(r));
  EXPECT_EQ(r.output.find("missing.jpg"), std::string::npos) << "the device is checked first: " << r.output;
}

}  // namespace
