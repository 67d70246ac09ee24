// The HDF5 shard format (data/FORMAT.md): writer -> reader round trips, the
// reader's and verify's rejection of damaged datasets, the JPEG codec on bad
// data, and the real resnet-data binary (synth, inspect, verify, convert).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/jpeg_codec.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "dataset_test_util.h"
#include "trainer/checkpoint/h5_io.h"
#include "process_util.h"

namespace {

namespace fs = std::filesystem;
using namespace rn::shards;
using rn::testing_util::fresh_dir;
using rn::testing_util::ProcessRun;
using namespace rn::testing_util;

template <class T>
void replace_dataset(hid_t file, const char* name, hid_t mem_type, hid_t file_type, const std::vector<T>& v) {
  H5Ldelete(file, name, H5P_DEFAULT);
  const hsize_t n = v.size();
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t set = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(set, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Dclose(set);
  H5Sclose(space);
}

nlohmann::json load_manifest(const std::string& dir) {
  std::ifstream in(fs::path(dir) / kManifestName);
  return nlohmann::json::parse(in);
}
void save_manifest(const std::string& dir, const nlohmann::json& j) {
  std::ofstream(fs::path(dir) / kManifestName) << j.dump(2);
}
// After editing a shard on purpose: make its checksum right again so that
// verify reports only the problem under test.
void refresh_checksum(const std::string& dir, int shard) {
  auto j = load_manifest(dir);
  j["shards"][shard]["checksum"] = checksum_hex(fnv1a64_file(shard_path(dir, shard)));
  save_manifest(dir, j);
}

bool any_problem_has(const VerifyReport& r, const std::vector<std::string>& needles) {
  return std::any_of(r.problems.begin(), r.problems.end(), [&](const std::string& p) {
    return std::all_of(needles.begin(), needles.end(), [&](const std::string& n) { return p.find(n) != std::string::npos; });
  });
}

std::string problems(const VerifyReport& r) {
  std::string s;
  for (const auto& p : r.problems) s += p + "\n";
  return s;
}

TEST(Shard, JpegRoundTripSeveralShardsLastPartial) {
  const std::string dir = fresh_dir("rn_shard_jpeg");
  const Written w = write_dataset(dir, Layout::kJpeg, 10, 4);
  ShardReader r(dir);
  EXPECT_EQ(r.size(), 10);
  ASSERT_EQ(r.num_shards(), 3);
  EXPECT_EQ(r.manifest().shards[0].samples, 4);
  EXPECT_EQ(r.manifest().shards[2].samples, 2);
  EXPECT_EQ(r.manifest().layout, Layout::kJpeg);
  EXPECT_EQ(r.manifest().class_names, (std::vector<std::string>{"0", "1", "2"}));
  for (int i = 0; i < 10; ++i) {
    const Sample s = r.read(i);
    EXPECT_EQ(s.data, w.data[static_cast<size_t>(i)]) << i;
    EXPECT_EQ(s.label, w.labels[static_cast<size_t>(i)]) << i;
    const rn::DecodedImage img = rn::decode_jpeg(s.data.data(), s.data.size());
    EXPECT_EQ(img.width, 16);
    EXPECT_EQ(img.height, 12);
  }
  EXPECT_EQ(r.locate(9), (std::pair<int, int64_t>{2, 1}));
  // Reading out of order works too (random access).
  EXPECT_EQ(r.read(5).data, w.data[5]);
  EXPECT_EQ(r.read(0).data, w.data[0]);
  expect_user_error([&] { r.read(10); }, {"index 10", "out of range"});
  EXPECT_TRUE(verify_dataset(dir).ok()) << problems(verify_dataset(dir));
  // No temporary files are left behind.
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos);
}

TEST(Shard, RawRoundTripSeveralShardsLastPartial) {
  const std::string dir = fresh_dir("rn_shard_raw");
  const Written w = write_dataset(dir, Layout::kRaw, 7, 3, 4, 5, 4);
  ShardReader r(dir);
  ASSERT_EQ(r.num_shards(), 3);
  EXPECT_EQ(r.manifest().shards[2].samples, 1);
  EXPECT_EQ(r.manifest().image_width, 5);
  EXPECT_EQ(r.manifest().image_height, 4);
  for (int i = 6; i >= 0; --i) {
    const Sample s = r.read(i);
    EXPECT_EQ(s.data, w.data[static_cast<size_t>(i)]) << i;
    EXPECT_EQ(s.label, w.labels[static_cast<size_t>(i)]) << i;
  }
  const VerifyReport v = verify_dataset(dir);
  EXPECT_TRUE(v.ok()) << problems(v);
  EXPECT_EQ(v.samples_checked, 7);
}

TEST(Shard, UnfinishedWriterLeavesNoDataset) {
  const std::string dir = fresh_dir("rn_shard_unfinished");
  {
    ShardWriterOptions o;
    o.dir = dir;
    o.num_classes = 2;
    o.shard_size = 2;
    ShardWriter wr(o);
    const auto img = test_image(8, 8, 0);
    const auto jpg = rn::encode_jpeg(img.data(), 8, 8);
    for (int i = 0; i < 5; ++i) wr.add_jpeg(jpg, i % 2);  // two shards complete, no finish()
  }
  EXPECT_FALSE(fs::exists(fs::path(dir) / kManifestName));
  expect_user_error([&] { ShardReader r(dir); }, {"manifest.json", "missing"});
  // A non-empty directory is not overwritten.
  std::ofstream(fs::path(dir) / "x") << "x";
  expect_user_error([&] { write_dataset(dir, Layout::kJpeg, 1, 1); }, {dir, "not empty"});
}

TEST(Shard, ReaderRejectsMissingDirectory) {
  expect_user_error([] { ShardReader r("/nonexistent/rn_dataset"); }, {"/nonexistent/rn_dataset", "does not exist"});
}

TEST(Shard, ReaderRejectsWrongFormatVersion) {
  const std::string dir = fresh_dir("rn_shard_version");
  write_dataset(dir, Layout::kJpeg, 3, 2);
  auto j = load_manifest(dir);
  j["format_version"] = 2;
  save_manifest(dir, j);
  expect_user_error([&] { ShardReader r(dir); }, {"manifest.json", "format_version", "is 2", "version 1"});
  // The shard's own attribute is checked too.
  j["format_version"] = 1;
  save_manifest(dir, j);
  edit_shard(shard_path(dir, 1), [](hid_t f) {
    const int32_t v = 7;
    const hid_t a = H5Aopen(f, kAttrFormatVersion, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT32, &v);
    H5Aclose(a);
  });
  expect_user_error([&] { ShardReader r(dir); }, {"shard-00001.h5", "format_version", "is 7", "expected 1"});
}

// h5py writes a Python str attribute as variable-length UTF-8; shards
// touched by Python tools must still open.
TEST(Shard, ReaderAcceptsUtf8VariableLengthStringAttributes) {
  const std::string dir = fresh_dir("rn_shard_utf8");
  write_dataset(dir, Layout::kJpeg, 3, 2);
  edit_shard(shard_path(dir, 0), [](hid_t f) {
    rn::h5::set_attr(f, kAttrLayout, std::string("jpeg"));
    rn::h5::set_attr(f, kAttrOrigin, std::string("edited in Python \u00e9"));
  });
  ShardReader r(dir);
  EXPECT_EQ(r.manifest().total_samples, 3);
  EXPECT_FALSE(r.read(0).data.empty());
}

TEST(Shard, ReaderRejectsBadManifestFields) {
  const std::string dir = fresh_dir("rn_shard_manifest");
  write_dataset(dir, Layout::kJpeg, 3, 2);
  auto j = load_manifest(dir);
  j["num_classes"] = "three";
  save_manifest(dir, j);
  expect_user_error([&] { ShardReader r(dir); }, {"manifest.json", "num_classes", "integer"});
  j = load_manifest(dir);
  j["num_classes"] = 3;
  j["total_samples"] = 4;
  save_manifest(dir, j);
  expect_user_error([&] { ShardReader r(dir); }, {"total_samples", "is 4", "hold 3"});
  j["total_samples"] = 3;
  j["shards"][0]["file"] = "../etc/passwd";
  save_manifest(dir, j);
  expect_user_error([&] { ShardReader r(dir); }, {"shards[0].file", "plain file name"});
  std::ofstream(fs::path(dir) / kManifestName) << "{ not json";
  expect_user_error([&] { ShardReader r(dir); }, {"manifest.json", "not valid JSON"});
}

TEST(Shard, ReaderRejectsMissingDataset) {
  const std::string dir = fresh_dir("rn_shard_missing_ds");
  write_dataset(dir, Layout::kJpeg, 5, 2);
  edit_shard(shard_path(dir, 2), [](hid_t f) { H5Ldelete(f, kLabels, H5P_DEFAULT); });
  expect_user_error([&] { ShardReader r(dir); }, {"shard-00002.h5", "/labels", "missing"});
  fs::remove(shard_path(dir, 1));
  expect_user_error([&] { ShardReader r(dir); }, {"shard-00001.h5", "missing"});
}

TEST(Shard, ReaderRejectsWrongDtype) {
  const std::string dir = fresh_dir("rn_shard_dtype");
  write_dataset(dir, Layout::kJpeg, 4, 2);
  edit_shard(shard_path(dir, 0), [](hid_t f) {
    replace_dataset(f, kLabels, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, std::vector<float>{0.f, 1.f});
  });
  expect_user_error([&] { ShardReader r(dir); }, {"shard-00000.h5", "/labels", "float32", "expected int32"});
}

TEST(Shard, ReaderRejectsRawImagesOfTheWrongShape) {
  const std::string dir = fresh_dir("rn_shard_rank");
  write_dataset(dir, Layout::kRaw, 4, 2, 3, 5, 4);
  auto j = load_manifest(dir);
  j["image_width"] = 6;
  save_manifest(dir, j);
  expect_user_error([&] { ShardReader r(dir); }, {"shard-00000.h5", "/images", "(2, 4, 5, 3)", "expected (2, 4, 6, 3)"});
  edit_shard(shard_path(dir, 0), [](hid_t f) {
    replace_dataset(f, kImages, H5T_NATIVE_UINT8, H5T_STD_U8LE, std::vector<uint8_t>(120));
  });
  expect_user_error([&] { ShardReader r(dir); }, {"shard-00000.h5", "/images", "rank 1", "expected 4"});
}

TEST(Shard, ReaderRejectsOffsetsNotMatchingImages) {
  const std::string dir = fresh_dir("rn_shard_offsets");
  write_dataset(dir, Layout::kJpeg, 4, 2);
  std::vector<uint64_t> off(3);
  edit_shard(shard_path(dir, 1), [&](hid_t f) {
    const hid_t set = H5Dopen2(f, kOffsets, H5P_DEFAULT);
    H5Dread(set, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off.data());
    H5Dclose(set);
    off[2] += 5;  // points past the end of /images
    replace_dataset(f, kOffsets, H5T_NATIVE_UINT64, H5T_STD_U64LE, off);
  });
  expect_user_error([&] { ShardReader r(dir); }, {"shard-00001.h5", "/offsets", "extent of /images"});
  // One entry short: N offsets instead of N+1.
  edit_shard(shard_path(dir, 1), [&](hid_t f) {
    replace_dataset(f, kOffsets, H5T_NATIVE_UINT64, H5T_STD_U64LE, std::vector<uint64_t>{0, off[1]});
  });
  expect_user_error([&] { ShardReader r(dir); }, {"shard-00001.h5", "/offsets", "(2,)", "expected (3,)"});
}

TEST(Shard, VerifyReportsLabelOutOfRange) {
  const std::string dir = fresh_dir("rn_shard_label");
  write_dataset(dir, Layout::kJpeg, 5, 2);
  edit_shard(shard_path(dir, 1), [](hid_t f) {
    const hid_t set = H5Dopen2(f, kLabels, H5P_DEFAULT);
    const int32_t bad[2] = {99, 1};
    H5Dwrite(set, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, bad);
    H5Dclose(set);
  });
  refresh_checksum(dir, 1);
  const VerifyReport v = verify_dataset(dir);
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.problems.size(), 1u) << problems(v);
  EXPECT_TRUE(any_problem_has(v, {"shard-00001.h5 index 0", "sample 2", "label 99", "out of range [0, 3)"}))
      << problems(v);
}

TEST(Shard, VerifyReportsACorruptedShardByte) {
  const std::string dir = fresh_dir("rn_shard_corrupt");
  const Written w = write_dataset(dir, Layout::kJpeg, 5, 2);
  // Flip a byte in the middle of sample 3's JPEG data (shard 1, index 1).
  const std::string path = shard_path(dir, 1);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string needle(w.data[3].begin(), w.data[3].end());
  const size_t at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos);
  bytes[at + needle.size() / 2] = static_cast<char>(bytes[at + needle.size() / 2] ^ 0x5A);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  ShardReader r(dir);  // structure is intact: the reader opens it
  const VerifyReport v = verify_dataset(dir);
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(any_problem_has(v, {"shard-00001.h5", "checksum mismatch"})) << problems(v);
}

TEST(Jpeg, RoundTripIsClose) {
  // A smooth image (test_image wraps around sharply, which JPEG blurs).
  std::vector<uint8_t> img(33 * 17 * 3);
  for (int y = 0; y < 17; ++y)
    for (int x = 0; x < 33; ++x)
      for (int c = 0; c < 3; ++c) img[(static_cast<size_t>(y) * 33 + x) * 3 + c] = static_cast<uint8_t>(40 + 3 * x + 4 * y + 40 * c);
  const auto jpg = rn::encode_jpeg(img.data(), 33, 17, 90);
  ASSERT_GT(jpg.size(), 4u);
  EXPECT_EQ(jpg[0], 0xFF);
  EXPECT_EQ(jpg[1], 0xD8);
  const rn::DecodedImage d = rn::decode_jpeg(jpg.data(), jpg.size());
  ASSERT_EQ(d.width, 33);
  ASSERT_EQ(d.height, 17);
  double err = 0;
  for (size_t i = 0; i < img.size(); ++i) err += std::abs(int(img[i]) - int(d.rgb[i]));
  EXPECT_LT(err / double(img.size()), 3.0);
}

TEST(Jpeg, TruncatedOrCorruptDataIsAnErrorNotACrash) {
  const auto img = test_image(64, 64, 1);
  const auto jpg = rn::encode_jpeg(img.data(), 64, 64, 90);
  for (size_t keep : {jpg.size() / 2, jpg.size() - 2, size_t(20), size_t(2)})
    EXPECT_THROW(rn::decode_jpeg(jpg.data(), keep), rn::JpegError) << "kept " << keep << " of " << jpg.size();
  const std::vector<uint8_t> garbage(500, 0x42);
  EXPECT_THROW(rn::decode_jpeg(garbage.data(), garbage.size()), rn::JpegError);
  EXPECT_THROW(rn::decode_jpeg(jpg.data(), 0), rn::JpegError);
}

ProcessRun resnet_data(const std::string& args) {
  return rn::testing_util::run_command(std::string(RN_BIN_DIR) + "/resnet-data " + args);
}

void expect_in(const ProcessRun& r, const std::vector<std::string>& needles) {
  for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in: " << r.output;
}

TEST(ResnetData, SynthInspectVerify) {
  const std::string dir = fresh_dir("rn_data_synth");
  const ProcessRun s = resnet_data("synth --classes 4 --count 50 --size 24x20 --shard-size 16 --seed 3 --out " + dir);
  ASSERT_EQ(s.exit_code, 0) << s.output;
  expect_in(s, {"img/s", "ETA", "50 samples in 4 shard(s)"});
  ShardReader r(dir);
  EXPECT_EQ(r.size(), 50);
  EXPECT_EQ(r.manifest().num_classes, 4);
  const rn::DecodedImage img = rn::decode_jpeg(r.read(49).data.data(), r.read(49).data.size());
  EXPECT_EQ(img.width, 24);
  EXPECT_EQ(img.height, 20);

  const ProcessRun i = resnet_data("inspect " + dir);
  EXPECT_EQ(i.exit_code, 0) << i.output;
  expect_in(i, {"samples:        50", "classes:        4", "shards:         4", "layout:         jpeg",
                "shard-00003.h5  2 samples", "class3"});
  const ProcessRun v = resnet_data("verify " + dir);
  EXPECT_EQ(v.exit_code, 0) << v.output;
  expect_in(v, {"50 samples checked, 50 images decoded, 0 problem(s)", "OK"});

  // Same seed, raw layout: a learnable dataset with the same labels.
  const std::string raw = fresh_dir("rn_data_synth_raw");
  ASSERT_EQ(resnet_data("synth --classes 4 --count 50 --size 24x20 --seed 3 --layout raw --out " + raw).exit_code, 0);
  ShardReader rr(raw);
  for (int k = 0; k < 50; ++k) EXPECT_EQ(rr.label(k), r.label(k));

  // Damage a shard: verify exits 1 naming it.
  {
    const std::string path = shard_path(dir, 2);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(path) - 100));
    f.put('\x7f');
  }
  const ProcessRun bad = resnet_data("verify " + dir);
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  expect_in(bad, {"shard-00002.h5", "checksum mismatch", "FAILED"});
}

TEST(ResnetData, UsageErrorsExitTwoSayingWhatToFix) {
  struct Case {
    std::string args;
    std::vector<std::string> needles;
  };
  const std::string out = fresh_dir("rn_data_usage");
  for (const Case& c : std::vector<Case>{
           {"", {"usage"}},
           {"frobnicate", {"unknown command 'frobnicate'"}},
           {"synth --classes 4 --count 10 --size 8x8", {"missing --out"}},
           {"synth --classes 4 --count 10 --size 8 --out " + out, {"--size", "WIDTHxHEIGHT"}},
           {"synth --classes zero --count 10 --size 8x8 --out " + out, {"--classes", "integer", "zero"}},
           {"synth --classes 4 --count 10 --size 8x8 --layout png --out " + out, {"--layout", "png"}},
           {"synth --classes 4 --count 10 --size 8x8 --colour red --out " + out, {"unknown option --colour"}},
           {"inspect /nonexistent/rn_ds", {"/nonexistent/rn_ds", "does not exist"}},
           {"verify /nonexistent/rn_ds", {"/nonexistent/rn_ds", "does not exist"}},
           {"convert imagenet2 --src /tmp --out " + out, {"imagenet2", "cifar10, imagenet"}},
       }) {
    const ProcessRun r = resnet_data(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << ": " << r.output;
    expect_in(r, c.needles);
  }
  EXPECT_FALSE(fs::exists(out)) << "a usage error must fail before any work";
  const ProcessRun h = resnet_data("--help");
  EXPECT_EQ(h.exit_code, 0);
  expect_in(h, {"synth", "convert cifar10", "inspect", "verify"});
}

// A CIFAR-10 binary directory with `per_batch` records in each batch.
void write_fake_cifar(const std::string& dir, int per_batch) {
  fs::create_directories(dir);
  auto write_batch = [&](const std::string& name, int batch) {
    std::ofstream f(fs::path(dir) / name, std::ios::binary);
    for (int r = 0; r < per_batch; ++r) {
      const int k = batch * per_batch + r;
      f.put(static_cast<char>(k % 10));
      for (int c = 0; c < 3; ++c)
        for (int p = 0; p < 1024; ++p) f.put(static_cast<char>((p * 7 + c * 85 + k * 13) % 256));
    }
  };
  for (int b = 1; b <= 5; ++b) write_batch("data_batch_" + std::to_string(b) + ".bin", b - 1);
  write_batch("test_batch.bin", 5);
  std::ofstream(fs::path(dir) / "batches.meta.txt")
      << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
}

TEST(ResnetData, ConvertCifar10) {
  const std::string src = fresh_dir("rn_data_cifar_src"), out = fresh_dir("rn_data_cifar_out");
  write_fake_cifar(src, 2);
  const ProcessRun r = resnet_data("convert cifar10 --src " + src + " --out " + out + " --shard-size 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_in(r, {"img/s", "wrote 10 train samples", "wrote 2 val samples"});
  ShardReader train((fs::path(out) / "train").string()), val((fs::path(out) / "val").string());
  EXPECT_EQ(train.size(), 10);
  EXPECT_EQ(train.num_shards(), 3);
  EXPECT_EQ(val.size(), 2);
  EXPECT_EQ(train.manifest().layout, Layout::kRaw);
  EXPECT_EQ(train.manifest().num_classes, 10);
  EXPECT_EQ(train.manifest().class_names[9], "truck");
  EXPECT_EQ(train.manifest().class_names.size(), 10u);
  // Sample 7 is data_batch_4's second record (k = 7): CHW planar -> HWC.
  const Sample s = train.read(7);
  EXPECT_EQ(s.label, 7);
  ASSERT_EQ(s.data.size(), 3072u);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 3; ++c) {
        const int p = y * 32 + x;
        ASSERT_EQ(s.data[static_cast<size_t>(p) * 3 + c], (p * 7 + c * 85 + 7 * 13) % 256) << y << "," << x << "," << c;
      }
  EXPECT_EQ(val.read(1).label, 11 % 10);  // test_batch's second record, k = 11
  EXPECT_EQ(resnet_data("verify " + (fs::path(out) / "val").string()).exit_code, 0);
  const ProcessRun i = resnet_data("inspect " + (fs::path(out) / "train").string());
  expect_in(i, {"samples:        10", "layout:         raw (32x32x3 per image)", "airplane", "truck"});
}

TEST(ResnetData, ConvertCifar10NamesTheMissingFile) {
  const std::string src = fresh_dir("rn_data_cifar_missing"), out = fresh_dir("rn_data_cifar_missing_out");
  write_fake_cifar(src, 1);
  fs::remove(fs::path(src) / "data_batch_3.bin");
  const ProcessRun r = resnet_data("convert cifar10 --src " + src + " --out " + out);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  expect_in(r, {"data_batch_3.bin", "missing"});
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
