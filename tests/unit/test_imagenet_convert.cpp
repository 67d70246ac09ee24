// resnet-data convert imagenet: the folder scan and labels files
// (data/imagenet_folder.h), the CMYK-capable decode (data/jpeg_codec.h), image
// preparation and the real binary end to end on small generated JPEG folders.
#include <gtest/gtest.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/imagenet_convert.h"
#include "data/imagenet_folder.h"
#include "data/jpeg_codec.h"
#include "data/shard_reader.h"
#include "dataset_test_util.h"
#include "process_util.h"

namespace {

namespace fs = std::filesystem;
using rn::data::ClassList;
using rn::data::ImageList;
using rn::shards::ShardReader;
using rn::testing_util::fresh_dir;
using rn::testing_util::ProcessRun;
using rn::testing_util::expect_user_error;

using Bytes = std::vector<uint8_t>;

// A smooth RGB image (gradients without wrap-around, which JPEG keeps close), HWC;
// seeds 0..39 give different images.
Bytes smooth_image(int w, int h, int seed) {
  Bytes img(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img[(static_cast<size_t>(y) * w + x) * 3 + c] =
            static_cast<uint8_t>(10 + x * 80 / w + y * 60 / h + 25 * c + seed * 7 % 40);
  return img;
}

void write_bytes(const fs::path& p, const Bytes& b) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

Bytes write_jpeg(const fs::path& p, int w, int h, int seed) {
  const Bytes img = smooth_image(w, h, seed);
  Bytes jpg = rn::encode_jpeg(img.data(), w, h, 90);
  write_bytes(p, jpg);
  return jpg;
}

void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

// Adobe-style CMYK JPEG (as Photoshop writes them, and as TurboJPEG does for
// TJPF_CMYK): each stored byte is 255 - ink, so R = C * K / 255.
Bytes cmyk_jpeg(const Bytes& rgb, int w, int h) {
  Bytes cmyk(static_cast<size_t>(w) * h * 4);
  for (size_t p = 0; p < static_cast<size_t>(w) * h; ++p) {
    const uint8_t* s = &rgb[p * 3];
    const int k = std::max({s[0], s[1], s[2]});
    for (int c = 0; c < 3; ++c) cmyk[p * 4 + c] = static_cast<uint8_t>(k ? (s[c] * 255 + k / 2) / k : 255);
    cmyk[p * 4 + 3] = static_cast<uint8_t>(k);
  }
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  EXPECT_EQ(tjCompress2(tj, cmyk.data(), w, 0, h, TJPF_CMYK, &buf, &size, TJSAMP_444, 95, 0), 0) << tjGetErrorStr2(tj);
  Bytes out(buf, buf + size);
  tjFree(buf);
  tjDestroy(tj);
  return out;
}

double mean_abs_diff(const Bytes& a, const Bytes& b) {
  EXPECT_EQ(a.size(), b.size());
  double e = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) e += std::abs(int(a[i]) - int(b[i]));
  return e / double(std::max<size_t>(1, a.size()));
}

ProcessRun resnet_data(const std::string& args) {
  return rn::testing_util::run_command(std::string(RN_BIN_DIR) + "/resnet-data " + args);
}

void expect_in(const ProcessRun& r, const std::vector<std::string>& needles) {
  for (const auto& n : needles)
    EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in: " << r.output;
}

// 3 classes x 5 images of varying sizes, created out of order; file names
// sort in byte order ("C" < "a"). Returns the expected samples in dataset order.
struct Expected {
  std::vector<Bytes> data;
  std::vector<int32_t> labels;
};

Expected make_train_tree(const fs::path& root) {
  // Both lists in sorted (byte) order; written out of order below.
  const std::vector<std::string> classes = {"n01440764", "n01443537", "n01484850"};
  const std::vector<std::string> files = {"C_0.jpeg", "a_1.JPEG", "a_2.jpg", "b_3.JPG", "b_4.JPEG"};
  const int sizes[][2] = {{64, 48}, {50, 70}, {33, 33}, {40, 24}, {24, 40}};
  Expected e;
  for (int k : {2, 0, 1})
    for (int f : {3, 1, 4, 0, 2}) write_jpeg(root / classes[k] / files[f], sizes[f][0], sizes[f][1], 10 * k + f);
  for (int k = 0; k < 3; ++k)
    for (int f = 0; f < 5; ++f) {
      const Bytes img = smooth_image(sizes[f][0], sizes[f][1], 10 * k + f);
      e.data.push_back(rn::encode_jpeg(img.data(), sizes[f][0], sizes[f][1], 90));
      e.labels.push_back(k);
    }
  write_text(root / classes[0] / "notes.txt", "not an image");
  write_jpeg(root / classes[1] / "._a_1.JPEG", 8, 8, 0);  // macOS resource fork: hidden, ignored
  return e;
}

std::vector<rn::shards::Sample> read_all(const std::string& dir) {
  ShardReader r(dir);
  std::vector<rn::shards::Sample> out;
  for (int64_t i = 0; i < r.size(); ++i) out.push_back(r.read(i));
  return out;
}

// ---------------------------------------------------------------------------
// The library: folder scan, labels files, JPEG header and CMYK decode.

TEST(ImagenetFolder, ScanSortsClassesAndFilesAndIgnoresOthers) {
  const fs::path root = fresh_dir("rn_in_scan");
  make_train_tree(root);
  write_jpeg(root / "loose.JPEG", 8, 8, 0);
  const ImageList l = rn::data::scan_class_folders(root.string());
  EXPECT_EQ(l.class_names, (std::vector<std::string>{"n01440764", "n01443537", "n01484850"}));
  ASSERT_EQ(l.images.size(), 15u);
  EXPECT_EQ(l.images[0].path, (root / "n01440764" / "C_0.jpeg").string());
  EXPECT_EQ(l.images[4].path, (root / "n01440764" / "b_4.JPEG").string());
  EXPECT_EQ(l.images[5].path, (root / "n01443537" / "C_0.jpeg").string());
  for (size_t i = 0; i < 15; ++i) EXPECT_EQ(l.images[i].label, static_cast<int32_t>(i / 5)) << i;
  EXPECT_EQ(l.ignored,
            (std::vector<std::string>{(root / "loose.JPEG").string(), (root / "n01440764" / "notes.txt").string(),
                                      (root / "n01443537" / "._a_1.JPEG").string()}));
  EXPECT_TRUE(rn::data::is_image_file_name("x.JpEg"));
  EXPECT_FALSE(rn::data::is_image_file_name("x.png"));
  EXPECT_FALSE(rn::data::is_image_file_name(".x.jpg"));
}

TEST(ImagenetFolder, ClassListGivesLabelsAndRejectsUnknownFolders) {
  const fs::path root = fresh_dir("rn_in_scan_classes");
  write_jpeg(root / "b" / "1.jpg", 8, 8, 0);
  write_jpeg(root / "c" / "1.jpg", 8, 8, 1);
  const ClassList list{{"c", "a", "b"}, "the list"};
  const ImageList l = rn::data::scan_class_folders(root.string(), list);
  EXPECT_EQ(l.class_names, list.names);
  ASSERT_EQ(l.images.size(), 2u);  // label order: c (0) first, then b (2)
  EXPECT_EQ(l.images[0].label, 0);
  EXPECT_EQ(l.images[1].label, 2);
  write_jpeg(root / "zebra" / "1.jpg", 8, 8, 2);
  expect_user_error([&] { rn::data::scan_class_folders(root.string(), list); }, {"zebra", "not classes of the list"});
}

TEST(ImagenetFolder, EmptyClassFolderOrNoClassesIsAnError) {
  const fs::path root = fresh_dir("rn_in_scan_empty");
  write_jpeg(root / "a" / "1.jpg", 8, 8, 0);
  fs::create_directories(root / "b");
  write_text(root / "c" / "readme.txt", "x");
  expect_user_error([&] { rn::data::scan_class_folders(root.string()); },
                    {"2 class folder(s)", root.string(), "hold no images", "b, c"});
  const fs::path flat = fresh_dir("rn_in_scan_flat");
  write_jpeg(flat / "1.jpg", 8, 8, 0);
  expect_user_error([&] { rn::data::scan_class_folders(flat.string()); }, {"no class sub-folders", "--labels"});
  const fs::path none = fresh_dir("rn_in_scan_none");
  fs::create_directories(none);
  expect_user_error([&] { rn::data::scan_class_folders(none.string()); }, {none.string(), "no class sub-folders"});
}

TEST(ImagenetFolder, ParsesBothLabelsFormats) {
  std::istringstream pairs("a.JPEG n01\r\n\n  b,n02 \nval/c.jpg\t7\n");
  const auto p = rn::data::parse_labels(pairs, "labels.txt");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].image, "a.JPEG");
  EXPECT_EQ(p[0].cls, "n01");
  EXPECT_EQ(p[1].image, "b");
  EXPECT_EQ(p[1].cls, "n02");
  EXPECT_EQ(p[1].line, 3);
  EXPECT_EQ(p[2].image, "val/c.jpg");
  EXPECT_EQ(p[2].cls, "7");
  std::istringstream kaggle(
      "\xEF\xBB\xBFImageId,PredictionString\n"
      "ILSVRC2012_val_00008726,n02119789 255 142 454 329 n02119789 44 21 322 295 \n"
      "ILSVRC2012_val_00000001,n01751748 19 38 437 253\n");
  const auto k = rn::data::parse_labels(kaggle, "LOC_val_solution.csv");
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k[0].image, "ILSVRC2012_val_00008726");
  EXPECT_EQ(k[0].cls, "n02119789");
  EXPECT_EQ(k[1].cls, "n01751748");
  EXPECT_EQ(k[1].line, 3);
}

TEST(ImagenetFolder, MalformedLabelsNameFileAndLine) {
  std::istringstream three("a.jpg n01\nb.jpg n01 extra\n");
  expect_user_error([&] { rn::data::parse_labels(three, "l.txt"); }, {"l.txt:2", "FILENAME CLASS", "extra"});
  std::istringstream kaggle("ImageId,PredictionString\nILSVRC2012_val_00000001,\n");
  expect_user_error([&] { rn::data::parse_labels(kaggle, "s.csv"); }, {"s.csv:2", "PredictionString"});
  std::istringstream empty("\n\n");
  expect_user_error([&] { rn::data::parse_labels(empty, "e.txt"); }, {"e.txt", "no labels"});
}

TEST(ImagenetFolder, FlatFolderMatchesLabelsAndRejectsMismatches) {
  const fs::path root = fresh_dir("rn_in_flat");
  for (int i = 1; i <= 3; ++i) write_jpeg(root / "val" / ("v" + std::to_string(i) + ".JPEG"), 8, 8, i);
  const std::string val = (root / "val").string(), labels = (root / "l.txt").string();
  write_text(labels, "v3 n09\nv1.JPEG n05\nv2 n09\n");
  ImageList l = rn::data::scan_flat_folder(val, labels);
  EXPECT_EQ(l.class_names, (std::vector<std::string>{"n05", "n09"}));
  ASSERT_EQ(l.images.size(), 3u);
  EXPECT_EQ(l.images[0].path, (root / "val" / "v1.JPEG").string());
  EXPECT_EQ((std::vector<int32_t>{l.images[0].label, l.images[1].label, l.images[2].label}),
            (std::vector<int32_t>{0, 1, 1}));
  // A given class list: names and 0-based indices.
  write_text(labels, "v3 n09\nv1.JPEG 0\nv2 2\n");
  const ClassList list{{"n01", "n05", "n09"}, "the train set"};
  l = rn::data::scan_flat_folder(val, labels, list);
  EXPECT_EQ((std::vector<int32_t>{l.images[0].label, l.images[1].label, l.images[2].label}),
            (std::vector<int32_t>{0, 2, 2}));

  write_text(labels, "v3 n09\nv1 n05\nv2 n07\n");
  expect_user_error([&] { rn::data::scan_flat_folder(val, labels, list); },
                    {labels + ":3", "'n07'", "not one of the 3 classes of the train set"});
  write_text(labels, "v3 n09\nv1 n05\nv2 3\n");
  expect_user_error([&] { rn::data::scan_flat_folder(val, labels, list); }, {labels + ":3", "index 3", "out of range"});
  write_text(labels, "v3 1\nv1 0\nv2 1\n");
  expect_user_error([&] { rn::data::scan_flat_folder(val, labels); }, {labels, "class indices", "--classes"});
  write_text(labels, "v3 n09\nv1 n05\n");
  expect_user_error([&] { rn::data::scan_flat_folder(val, labels); }, {"1 image(s)", "no label", "v2.JPEG"});
  write_text(labels, "v3 n09\nv1 n05\nv2 n09\nv4.JPEG n05\n");
  expect_user_error([&] { rn::data::scan_flat_folder(val, labels); }, {labels, "v4.JPEG (line 4)", "not images in"});
  write_text(labels, "v3 n09\nv1 n05\nv2 n09\nv1.JPEG n05\n");
  expect_user_error([&] { rn::data::scan_flat_folder(val, labels); }, {labels + ":4", "labelled twice", "line 2"});
  expect_user_error([&] { rn::data::scan_flat_folder(val, (root / "nope.txt").string()); },
                    {"nope.txt", "does not exist"});
}

TEST(ImagenetJpeg, CmykJpegDecodesToRgb) {
  const Bytes rgb = smooth_image(40, 24, 3);
  const Bytes jpg = cmyk_jpeg(rgb, 40, 24);
  const rn::JpegHeader h = rn::read_jpeg_header(jpg.data(), jpg.size());
  EXPECT_EQ(h.width, 40);
  EXPECT_EQ(h.height, 24);
  EXPECT_EQ(h.colorspace, rn::JpegColorspace::kYcck);
  EXPECT_THROW(rn::decode_jpeg(jpg.data(), jpg.size()), rn::JpegError);  // why the converter re-encodes it
  const rn::DecodedImage d = rn::decode_jpeg_any_colorspace(jpg.data(), jpg.size());
  ASSERT_EQ(d.width, 40);
  ASSERT_EQ(d.height, 24);
  EXPECT_LT(mean_abs_diff(d.rgb, rgb), 3.0);
  const Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  EXPECT_THROW(rn::read_jpeg_header(png.data(), png.size()), rn::JpegError);
}

TEST(ImagenetJpeg, GrayscaleJpegIsStoredAsItIs) {
  const Bytes gray(24 * 16, 100);
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  ASSERT_EQ(tjCompress2(tj, gray.data(), 24, 0, 16, TJPF_GRAY, &buf, &size, TJSAMP_GRAY, 90, 0), 0);
  const Bytes jpg(buf, buf + size);
  tjFree(buf);
  tjDestroy(tj);
  EXPECT_EQ(rn::read_jpeg_header(jpg.data(), jpg.size()).colorspace, rn::JpegColorspace::kGray);
  const rn::data::PreparedImage p = rn::data::prepare_image(jpg, 256, 90);
  EXPECT_EQ(p.jpeg, jpg);  // the loader decodes grayscale to RGB itself
  EXPECT_EQ(rn::decode_jpeg(jpg.data(), jpg.size()).rgb.size(), 24u * 16 * 3);
}

TEST(ImagenetConvert, PrepareImageResizesTheShorterSideOnly) {
  const Bytes img = smooth_image(64, 48, 1);
  const Bytes jpg = rn::encode_jpeg(img.data(), 64, 48, 90);
  const rn::data::PreparedImage same = rn::data::prepare_image(jpg, 48, 90);  // shorter side already 48
  EXPECT_FALSE(same.resized);
  EXPECT_EQ(same.jpeg, jpg);
  const rn::data::PreparedImage small = rn::data::prepare_image(jpg, 32, 90);
  EXPECT_TRUE(small.resized);
  const rn::DecodedImage d = rn::decode_jpeg(small.jpeg.data(), small.jpeg.size());
  EXPECT_EQ(d.height, 32);
  EXPECT_EQ(d.width, 43);  // 64 * 32 / 48 = 42.67
  const Bytes truncated(jpg.begin(), jpg.begin() + static_cast<long>(jpg.size() / 2));
  EXPECT_THROW(rn::data::prepare_image(truncated, 0, 90), rn::JpegError);
}

// ---------------------------------------------------------------------------
// The binary, end to end.

TEST(ImagenetConvert, RoundTripIsByteIdenticalAndTheSameForAnyThreadCount) {
  const fs::path root = fresh_dir("rn_in_rt");
  const Expected e = make_train_tree(root / "train");
  std::vector<std::vector<rn::shards::Sample>> runs;
  for (int threads : {1, 3}) {
    const std::string out = (root / ("out" + std::to_string(threads))).string();
    const ProcessRun r = resnet_data("convert imagenet --src " + (root / "train").string() + " --out " + out +
                                     " --shard-size 4 --threads " + std::to_string(threads));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    expect_in(r, {"found 15 images of 3 classes", "ignored 2 entries", "img/s", "ETA",
                  "wrote 15 samples of 3 classes in 4 shard(s)"});
    ShardReader reader(out);
    EXPECT_EQ(reader.manifest().class_names, (std::vector<std::string>{"n01440764", "n01443537", "n01484850"}));
    EXPECT_EQ(reader.manifest().name, "imagenet-train");
    EXPECT_EQ(reader.manifest().layout, rn::shards::Layout::kJpeg);
    ASSERT_EQ(reader.num_shards(), 4);
    EXPECT_EQ(reader.manifest().shards[3].samples, 3);
    runs.push_back(read_all(out));
    ASSERT_EQ(runs.back().size(), 15u);
    for (size_t i = 0; i < 15; ++i) {
      EXPECT_EQ(runs.back()[i].data, e.data[i]) << i;
      EXPECT_EQ(runs.back()[i].label, e.labels[i]) << i;
    }
    const ProcessRun v = resnet_data("verify " + out);
    EXPECT_EQ(v.exit_code, 0) << v.output;
    expect_in(v, {"15 images decoded, 0 problem(s)", "OK"});
  }
  for (size_t i = 0; i < 15; ++i) EXPECT_EQ(runs[0][i].data, runs[1][i].data) << i;
}

TEST(ImagenetConvert, FlatValidationFolderWithBothLabelsFormatsAndTrainClasses) {
  const fs::path root = fresh_dir("rn_in_val");
  make_train_tree(root / "train");
  const std::string train = (root / "train_shards").string();
  ASSERT_EQ(resnet_data("convert imagenet --src " + (root / "train").string() + " --out " + train).exit_code, 0);
  std::vector<Bytes> val;
  for (int i = 1; i <= 4; ++i)
    val.push_back(write_jpeg(root / "val" / ("ILSVRC2012_val_0000000" + std::to_string(i) + ".JPEG"), 30, 20, i));
  // Classes by name, by index, whitespace and comma separated; and the Kaggle file.
  write_text(root / "val.txt",
             "ILSVRC2012_val_00000003.JPEG n01440764\nILSVRC2012_val_00000001.JPEG,n01484850\n"
             "ILSVRC2012_val_00000002.JPEG 1\nILSVRC2012_val_00000004.JPEG\tn01484850\n");
  write_text(root / "LOC_val_solution.csv",
             "ImageId,PredictionString\nILSVRC2012_val_00000004,n01484850 1 2 3 4\n"
             "ILSVRC2012_val_00000002,n01443537 1 2 3 4 n01443537 5 6 7 8\n"
             "ILSVRC2012_val_00000001,n01484850 1 2 3 4\nILSVRC2012_val_00000003,n01440764 9 9 9 9\n");
  for (const char* labels : {"val.txt", "LOC_val_solution.csv"}) {
    const std::string out = (root / ("val_" + std::string(labels))).string();
    const ProcessRun r = resnet_data("convert imagenet --src " + (root / "val").string() + " --labels " +
                                     (root / labels).string() + " --classes " + train + " --out " + out);
    ASSERT_EQ(r.exit_code, 0) << labels << ": " << r.output;
    const auto s = read_all(out);
    ASSERT_EQ(s.size(), 4u);
    EXPECT_EQ((std::vector<int32_t>{s[0].label, s[1].label, s[2].label, s[3].label}),
              (std::vector<int32_t>{2, 1, 0, 2}))
        << labels;
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(s[i].data, val[i]) << labels << " " << i;
    EXPECT_EQ(ShardReader(out).manifest().class_names, ShardReader(train).manifest().class_names);
    EXPECT_EQ(resnet_data("verify " + out).exit_code, 0);
  }
  // Without --classes: the sorted distinct names of the file.
  const std::string own = (root / "val_own").string();
  ASSERT_EQ(resnet_data("convert imagenet --src " + (root / "val").string() + " --labels " +
                        (root / "LOC_val_solution.csv").string() + " --out " + own)
                .exit_code,
            0);
  EXPECT_EQ(ShardReader(own).manifest().class_names, (std::vector<std::string>{"n01440764", "n01443537", "n01484850"}));
}

TEST(ImagenetConvert, MaxSideReencodesLargeImagesOnly) {
  const fs::path root = fresh_dir("rn_in_maxside");
  const Bytes wide = write_jpeg(root / "src" / "a" / "1.jpg", 64, 48, 1);
  write_jpeg(root / "src" / "a" / "2.jpg", 50, 70, 2);
  const Bytes small = write_jpeg(root / "src" / "a" / "3.jpg", 20, 30, 3);
  const Bytes exact = write_jpeg(root / "src" / "b" / "4.jpg", 32, 90, 4);
  const std::string out = (root / "out").string();
  const ProcessRun r = resnet_data("convert imagenet --src " + (root / "src").string() + " --out " + out +
                                   " --max-side 32 --quality 85 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_in(r, {"resized 2 images to a shorter side of 32"});
  const auto s = read_all(out);
  ASSERT_EQ(s.size(), 4u);
  const int expected[][2] = {{43, 32}, {32, 45}, {20, 30}, {32, 90}};  // 64*32/48 = 42.7, 70*32/50 = 44.8
  for (size_t i = 0; i < 4; ++i) {
    const rn::DecodedImage d = rn::decode_jpeg(s[i].data.data(), s[i].data.size());
    EXPECT_EQ(d.width, expected[i][0]) << i;
    EXPECT_EQ(d.height, expected[i][1]) << i;
  }
  EXPECT_NE(s[0].data, wide);
  EXPECT_EQ(s[2].data, small);  // already small enough: byte-identical
  EXPECT_EQ(s[3].data, exact);
  // The resized image is the source, scaled.
  const rn::DecodedImage d = rn::decode_jpeg(s[0].data.data(), s[0].data.size());
  const Bytes src = smooth_image(64, 48, 1);
  EXPECT_NEAR(d.rgb[0], src[0], 12);
  EXPECT_EQ(resnet_data("verify " + out).exit_code, 0);
}

TEST(ImagenetConvert, CmykJpegIsStoredAsRgb) {
  const fs::path root = fresh_dir("rn_in_cmyk");
  const Bytes rgb = smooth_image(40, 24, 5);
  write_bytes(root / "src" / "n1" / "cmyk.JPEG", cmyk_jpeg(rgb, 40, 24));
  write_jpeg(root / "src" / "n1" / "rgb.JPEG", 16, 16, 6);
  const std::string out = (root / "out").string();
  const ProcessRun r = resnet_data("convert imagenet --src " + (root / "src").string() + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_in(r, {"converted 1 CMYK images to RGB", "wrote 2 samples"});
  const auto s = read_all(out);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(rn::read_jpeg_header(s[0].data.data(), s[0].data.size()).colorspace, rn::JpegColorspace::kYCbCr);
  const rn::DecodedImage d = rn::decode_jpeg(s[0].data.data(), s[0].data.size());  // the loader's decoder
  ASSERT_EQ(d.width, 40);
  EXPECT_LT(mean_abs_diff(d.rgb, rgb), 4.0);
  EXPECT_EQ(resnet_data("verify " + out).exit_code, 0);
}

TEST(ImagenetConvert, UndecodableFilesAreSkippedAndListedUpToMaxBad) {
  const fs::path root = fresh_dir("rn_in_bad");
  for (int i = 0; i < 4; ++i) write_jpeg(root / "src" / "n1" / (std::to_string(i) + ".JPEG"), 16, 12, i);
  write_bytes(root / "src" / "n1" / "png.JPEG", {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H'});
  Bytes cut = rn::encode_jpeg(smooth_image(64, 64, 9).data(), 64, 64, 90);
  cut.resize(cut.size() - 100);  // the header stays whole: the scan is cut
  write_bytes(root / "src" / "n2" / "cut.jpg", cut);
  write_jpeg(root / "src" / "n2" / "ok.jpg", 16, 12, 7);
  if (geteuid() != 0) {  // root reads any file
    write_jpeg(root / "src" / "n2" / "secret.jpg", 16, 12, 8);
    fs::permissions(root / "src" / "n2" / "secret.jpg", fs::perms::none);
  }
  const std::string src = (root / "src").string(), out = (root / "out").string();
  const ProcessRun r = resnet_data("convert imagenet --src " + src + " --out " + out + " --shard-size 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string png = (root / "src" / "n1" / "png.JPEG").string(), bad = (root / "src" / "n2" / "cut.jpg").string();
  const std::string skipped = geteuid() != 0 ? "skipped 3 file(s)" : "skipped 2 file(s)";
  expect_in(r, {"wrote 5 samples", skipped + " that could not be read or decoded (--max-bad 100)",
                png + ": not a valid JPEG header", bad + ": corrupt or truncated JPEG"});
  if (geteuid() != 0) expect_in(r, {"secret.jpg: cannot open it: Permission denied"});
  EXPECT_EQ(ShardReader(out).size(), 5);
  EXPECT_EQ(resnet_data("verify " + out).exit_code, 0);

  const std::string out2 = (root / "out2").string();
  const ProcessRun f = resnet_data("convert imagenet --src " + src + " --out " + out2 + " --shard-size 2 --max-bad 1");
  EXPECT_EQ(f.exit_code, 1) << f.output;
  expect_in(f, {"more than --max-bad 1", "nothing was written", png, bad, "raise --max-bad"});
  EXPECT_FALSE(fs::exists(out2)) << "a failed conversion leaves no dataset";
}

TEST(ImagenetConvert, BadInputsExitTwoNamingWhatToFix) {
  const fs::path root = fresh_dir("rn_in_usage");
  make_train_tree(root / "train");
  write_jpeg(root / "val" / "v1.JPEG", 8, 8, 1);
  write_jpeg(root / "val" / "v2.JPEG", 8, 8, 2);
  write_text(root / "val.txt", "v1 n01440764\nv2 n01443537\n");
  write_text(root / "missing.txt", "v1 n01440764\nv2 n01443537\nv3 n01443537\n");
  write_text(root / "unlabelled.txt", "v1 n01440764\n");
  write_text(root / "foreign.txt", "v1 n01440764\nv2 n99999999\n");
  fs::create_directories(root / "train" / "n09999999");
  fs::create_directories(root / "empty_class" / "n1");
  write_jpeg(root / "empty_class" / "n2" / "1.jpg", 8, 8, 0);
  write_text(root / "not_empty" / "x", "x");
  const std::string r = root.string(), out = (root / "out").string();
  const std::string train_shards = (root / "train_shards").string();
  {
    const std::string tmp = (root / "train_ok").string();
    fs::create_directories(tmp);
    write_jpeg(fs::path(tmp) / "n01440764" / "a.jpg", 8, 8, 0);
    write_jpeg(fs::path(tmp) / "n01443537" / "a.jpg", 8, 8, 1);
    ASSERT_EQ(resnet_data("convert imagenet --src " + tmp + " --out " + train_shards).exit_code, 0);
  }
  struct Case {
    std::string args;
    std::vector<std::string> needles;
  };
  for (const Case& c : std::vector<Case>{
           {"--out " + out, {"missing --src"}},
           {"--src " + r + "/nope --out " + out, {"--src", r + "/nope", "does not exist"}},
           {"--src " + r + "/val.txt --out " + out, {"--src", "val.txt", "not a directory"}},
           {"--src " + r + "/val --out " + out, {"no class sub-folders", "--labels"}},
           {"--src " + r + "/train --out " + out, {"n09999999", "hold no images"}},
           {"--src " + r + "/empty_class --out " + out, {"1 class folder(s)", "n1"}},
           {"--src " + r + "/val --labels " + r + "/nope.txt --out " + out, {"nope.txt", "does not exist"}},
           {"--src " + r + "/val --labels " + r + "/missing.txt --out " + out, {"missing.txt", "v3 (line 3)"}},
           {"--src " + r + "/val --labels " + r + "/unlabelled.txt --out " + out, {"v2.JPEG", "no label"}},
           {"--src " + r + "/val --labels " + r + "/foreign.txt --classes " + train_shards + " --out " + out,
            {"foreign.txt:2", "n99999999", "not one of the 2 classes", train_shards}},
           {"--src " + r + "/val --labels " + r + "/val.txt --classes " + r + "/val --out " + out,
            {"--classes", "manifest.json", "converted dataset"}},
           {"--src " + r + "/val --labels " + r + "/val.txt --out " + r + "/not_empty", {"not_empty", "not empty"}},
           {"--src " + r + "/val --labels " + r + "/val.txt --quality 101 --out " + out, {"--quality", "101"}},
           {"--src " + r + "/val --labels " + r + "/val.txt --threads 0 --out " + out, {"--threads", ">= 1"}},
           {"--src " + r + "/val --labels " + r + "/val.txt --size 3 --out " + out, {"unknown option --size"}},
       }) {
    const ProcessRun p = resnet_data("convert imagenet " + c.args);
    EXPECT_EQ(p.exit_code, 2) << c.args << ": " << p.output;
    expect_in(p, c.needles);
  }
  EXPECT_FALSE(fs::exists(out)) << "a usage error must fail before any work";
  const ProcessRun h = resnet_data("--help");
  expect_in(h, {"convert imagenet", "--labels FILE", "LOC_val_solution.csv", "--max-side", "--max-bad"});
}

}  // namespace
