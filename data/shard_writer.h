// Writes a sharded dataset (data/FORMAT.md): samples are appended one at a
// time; every `shard_size` samples a shard file is written; finish() writes
// manifest.json with each shard's checksum.
//
// Crash safety: a shard is written as ".shard-NNNNN.h5.tmp" and renamed when
// complete; the manifest is written last (also via a temporary name), and a
// directory without manifest.json is not a dataset. A writer destroyed
// without finish() removes its temporary files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/shard_format.h"

namespace rn::shards {

struct ShardWriterOptions {
  std::string dir;  // must not exist, or be empty
  std::string name;
  std::string origin;  // free text: the command or source that made it
  Layout layout = Layout::kJpeg;
  int num_classes = 0;
  std::vector<std::string> class_names;  // empty: "0", "1", ...
  int image_height = 0;  // raw layout only
  int image_width = 0;
  int64_t shard_size = 1024;  // samples per shard (the last may hold fewer)
};

class ShardWriter {
 public:
  explicit ShardWriter(const ShardWriterOptions& o);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // layout jpeg: one encoded image.
  void add_jpeg(const uint8_t* data, size_t size, int32_t label);
  void add_jpeg(const std::vector<uint8_t>& data, int32_t label) { add_jpeg(data.data(), data.size(), label); }
  // layout raw: H*W*3 bytes, HWC order, RGB.
  void add_raw(const uint8_t* hwc, int32_t label);

  int64_t samples_written() const { return total_; }
  // Writes the last (partial) shard and the manifest; returns the manifest.
  Manifest finish();

 private:
  void check_label(int32_t label) const;
  void flush_shard();

  ShardWriterOptions o_;
  Manifest manifest_;
  std::vector<uint8_t> images_;
  std::vector<uint64_t> offsets_{0};
  std::vector<int32_t> labels_;
  std::vector<std::string> temporaries_;  // to remove if we never finish
  int64_t total_ = 0;
  bool finished_ = false;
};

}  // namespace rn::shards
