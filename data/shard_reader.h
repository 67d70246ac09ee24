// Opens a sharded dataset (data/FORMAT.md) and checks it before any read:
// the manifest's version and fields, and in every shard the datasets'
// presence, type, rank and extents and the root attributes. Any mismatch is
// an rn::UserError naming the file, the field and what was expected.
//
// Labels and (jpeg) offsets are held in memory; images are read on demand.
// Each reader owns its HDF5 handles: give each thread its own reader.
// Checksums are not computed here (that reads every byte): see verify_dataset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/h5_util.h"
#include "data/shard_format.h"

namespace rn::shards {

struct Sample {
  std::vector<uint8_t> data;  // jpeg: the encoded bytes; raw: H*W*3 bytes HWC RGB
  int32_t label = 0;
};

class ShardReader {
 public:
  explicit ShardReader(const std::string& dir);
  ShardReader(ShardReader&&) noexcept = default;
  ShardReader& operator=(ShardReader&&) noexcept = default;

  const Manifest& manifest() const { return manifest_; }
  const std::string& dir() const { return dir_; }
  int64_t size() const { return manifest_.total_samples; }
  int num_shards() const { return static_cast<int>(shards_.size()); }

  // Global index -> (shard, index inside the shard).
  std::pair<int, int64_t> locate(int64_t index) const;
  int32_t label(int64_t index) const;
  // Stored bytes of sample `index` (jpeg: its encoded size; raw: H*W*3).
  size_t sample_bytes(int64_t index) const;
  // Reads sample `index`'s sample_bytes(index) bytes into dst.
  void read_bytes(int64_t index, uint8_t* dst);
  // Reads sample `index` into `out` (its buffer is reused).
  void read(int64_t index, Sample& out);
  Sample read(int64_t index) {
    Sample s;
    read(index, s);
    return s;
  }

 private:
  struct Shard {
    std::string path;
    H5Id file, images;
    std::vector<int32_t> labels;
    std::vector<uint64_t> offsets;  // jpeg only, N+1
  };
  void open_shard(int i);

  std::string dir_;
  Manifest manifest_;
  std::vector<Shard> shards_;
  std::vector<int64_t> starts_;  // first global index of each shard, plus the total
};

// What verify_dataset found: one line per problem, each naming shard and index.
struct VerifyReport {
  int64_t samples_checked = 0;
  int64_t images_decoded = 0;
  std::vector<int64_t> class_counts;
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};

// Checks every shard's checksum, then opens the dataset and checks every
// label is in range and (jpeg) every image decodes. Stops listing after `max_problems` problems. Throws rn::UserError
// only when `dir` holds no readable manifest.
VerifyReport verify_dataset(const std::string& dir, size_t max_problems = 100);

}  // namespace rn::shards
