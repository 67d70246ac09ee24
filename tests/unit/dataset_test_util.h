// Helpers for tests that need a small sharded dataset (data/FORMAT.md):
// deterministic images, a writer of a whole dataset, in-place shard edits
// and an expectation on rn::UserError messages.
#pragma once

#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "data/jpeg_codec.h"
#include "data/shard_writer.h"
#include "trainer/core/error.h"

namespace rn::testing_util {

using rn::shards::Layout;

// A small deterministic RGB image, HWC.
inline std::vector<uint8_t> test_image(int w, int h, int seed) {
  std::vector<uint8_t> img(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img[(static_cast<size_t>(y) * w + x) * 3 + c] =
            static_cast<uint8_t>((x * 16 + y * 8 + c * 60 + seed * 37) % 256);
  return img;
}

struct Written {
  std::vector<std::vector<uint8_t>> data;
  std::vector<int32_t> labels;
};

inline Written write_dataset(const std::string &dir, Layout layout, int n, int shard_size, int classes = 3, int w = 16,
                             int h = 12) {
  rn::shards::ShardWriterOptions o;
  o.dir = dir;
  o.name = "test";
  o.origin = "test_shards";
  o.layout = layout;
  o.num_classes = classes;
  o.image_width = w;
  o.image_height = h;
  o.shard_size = shard_size;
  rn::shards::ShardWriter wr(o);
  Written out;
  for (int i = 0; i < n; ++i) {
    const auto img = test_image(w, h, i);
    const int32_t label = (i * 7) % classes;
    if (layout == Layout::kJpeg) {
      out.data.push_back(rn::encode_jpeg(img.data(), w, h));
      wr.add_jpeg(out.data.back(), label);
    } else {
      out.data.push_back(img);
      wr.add_raw(img.data(), label);
    }
    out.labels.push_back(label);
  }
  wr.finish();
  return out;
}

inline std::string shard_path(const std::string &dir, int i) {
  return (std::filesystem::path(dir) / rn::shards::shard_file_name(i)).string();
}

// Expects `f` to throw rn::UserError whose message holds every needle.
template <class F>
void expect_user_error(F &&f, const std::vector<std::string> &needles) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const rn::UserError &e) {
    const std::string msg = e.what();
    for (const auto &n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  }
}

// Edits one shard in place with the HDF5 C API.
template <class F>
void edit_shard(const std::string &path, F &&f) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  f(file);
  H5Fclose(file);
}

// Zeroes the JPEG `jpeg` inside shard `shard` of `dir` (all but its SOI
// marker, same length), so the shard stays readable but that image no
// longer decodes.
inline void corrupt_jpeg_in_shard(const std::string& dir, int shard, const std::vector<uint8_t>& jpeg) {
  const std::string path = shard_path(dir, shard);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = bytes.find(std::string(jpeg.begin(), jpeg.end()));
  ASSERT_NE(at, std::string::npos);
  for (size_t i = 2; i < jpeg.size(); ++i) bytes[at + i] = char(0x00);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace rn::testing_util
