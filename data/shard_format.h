// The HDF5 shard format, version 1 (data/FORMAT.md describes it in full).
//
// A dataset is a directory: manifest.json plus shard-00000.h5, shard-00001.h5,
// ... A dataset is complete exactly when manifest.json exists: the writer
// renames it into place last.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/core/hash.h"

namespace rn::shards {

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kManifestName = "manifest.json";
inline constexpr const char* kChecksumAlgorithm = "fnv1a64";

// Names inside each shard file.
inline constexpr const char* kImages = "images";
inline constexpr const char* kOffsets = "offsets";
inline constexpr const char* kLabels = "labels";
inline constexpr const char* kAttrFormatVersion = "format_version";
inline constexpr const char* kAttrNumClasses = "num_classes";
inline constexpr const char* kAttrLayout = "layout";
inline constexpr const char* kAttrOrigin = "origin";

enum class Layout { kJpeg, kRaw };
std::string layout_name(Layout l);
// Throws rn::UserError naming `where` for anything but "jpeg" or "raw".
Layout parse_layout(const std::string& s, const std::string& where);

// "shard-00042.h5"
std::string shard_file_name(int index);

struct ShardInfo {
  std::string file;  // a plain file name inside the dataset directory
  int64_t samples = 0;
  uint64_t checksum = 0;  // FNV-1a 64 of the whole file's bytes
};

struct Manifest {
  int format_version = kFormatVersion;
  std::string name;
  std::string origin;
  Layout layout = Layout::kJpeg;
  int num_classes = 0;
  std::vector<std::string> class_names;
  int image_height = 0;  // raw layout: every image is (H, W, 3); 0 for jpeg
  int image_width = 0;
  int64_t total_samples = 0;
  std::vector<ShardInfo> shards;
};

using rn::fnv1a64;  // trainer/core/hash.h
// FNV-1a 64 of a file's bytes; throws rn::UserError if it cannot be read.
uint64_t fnv1a64_file(const std::string& path);
std::string checksum_hex(uint64_t c);  // 16 lower-case hex digits

// Reads and checks dir/manifest.json (version, types, consistency); throws
// rn::UserError naming the file and the field.
Manifest read_manifest(const std::string& dir);
// Writes `path` (a temporary name; the caller renames it).
void write_manifest_file(const std::string& path, const Manifest& m);

}  // namespace rn::shards
