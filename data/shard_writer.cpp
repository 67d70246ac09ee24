#include "data/shard_writer.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "data/h5_util.h"
#include "trainer/core/error.h"

namespace rn::shards {

namespace fs = std::filesystem;

namespace {

void write_attr(hid_t obj, const char* name, hid_t mem_type, hid_t file_type, const void* value) {
  H5Id space{H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose};
  H5Id attr{H5_CHECK(H5Acreate2(obj, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose};
  H5_CHECK(H5Awrite(attr.get(), mem_type, value));
}

void write_string_attr(hid_t obj, const char* name, const std::string& value) {
  H5Id type{H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose};
  H5_CHECK(H5Tset_size(type.get(), std::max<size_t>(1, value.size())));
  H5_CHECK(H5Tset_strpad(type.get(), H5T_STR_NULLPAD));
  std::string padded = value;
  padded.resize(std::max<size_t>(1, value.size()), '\0');
  write_attr(obj, name, type.get(), type.get(), padded.data());
}

// A dataset of `dims`, chunked with `chunk` when given (else contiguous).
void write_dataset(hid_t file, const char* name, const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk,
                   hid_t mem_type, hid_t file_type, const void* data) {
  H5Id space{H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)), H5Sclose};
  H5Id dcpl{H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)), H5Pclose};
  if (!chunk.empty()) H5_CHECK(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()));
  H5Id set{H5_CHECK(H5Dcreate2(file, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT)), H5Dclose};
  H5_CHECK(H5Dwrite(set.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

}  // namespace

ShardWriter::ShardWriter(const ShardWriterOptions& o) : o_(o) {
  if (o_.dir.empty()) throw UserError("no output directory given");
  if (o_.num_classes < 1) throw UserError("num_classes must be >= 1, got " + std::to_string(o_.num_classes));
  if (o_.shard_size < 1) throw UserError("shard size must be >= 1, got " + std::to_string(o_.shard_size));
  if (o_.class_names.empty())
    for (int k = 0; k < o_.num_classes; ++k) o_.class_names.push_back(std::to_string(k));
  if (static_cast<int>(o_.class_names.size()) != o_.num_classes)
    throw UserError(std::to_string(o_.class_names.size()) + " class names given for " + std::to_string(o_.num_classes) +
                    " classes");
  if (o_.layout == Layout::kRaw && (o_.image_height < 1 || o_.image_width < 1))
    throw UserError("layout raw needs an image size, got " + std::to_string(o_.image_width) + "x" +
                    std::to_string(o_.image_height));
  std::error_code ec;
  if (fs::exists(o_.dir) && !(fs::is_directory(o_.dir) && fs::is_empty(o_.dir)))
    throw UserError("output directory " + o_.dir + " already exists and is not empty: remove it or choose another");
  fs::create_directories(o_.dir, ec);
  if (ec) throw UserError("cannot create output directory " + o_.dir + ": " + ec.message());
  manifest_.name = o_.name;
  manifest_.origin = o_.origin;
  manifest_.layout = o_.layout;
  manifest_.num_classes = o_.num_classes;
  manifest_.class_names = o_.class_names;
  if (o_.layout == Layout::kRaw) {
    manifest_.image_height = o_.image_height;
    manifest_.image_width = o_.image_width;
  }
}

ShardWriter::~ShardWriter() {
  if (finished_) return;
  std::error_code ec;
  for (const auto& f : temporaries_) fs::remove(f, ec);
}

void ShardWriter::check_label(int32_t label) const {
  if (label < 0 || label >= o_.num_classes)
    throw UserError("label " + std::to_string(label) + " of sample " + std::to_string(total_) +
                    " is out of range [0, " + std::to_string(o_.num_classes) + ")");
}

void ShardWriter::add_jpeg(const uint8_t* data, size_t size, int32_t label) {
  if (o_.layout != Layout::kJpeg) throw UserError("add_jpeg on a dataset of layout raw");
  if (size == 0) throw UserError("sample " + std::to_string(total_) + " is an empty JPEG");
  check_label(label);
  images_.insert(images_.end(), data, data + size);
  offsets_.push_back(images_.size());
  labels_.push_back(label);
  ++total_;
  if (static_cast<int64_t>(labels_.size()) == o_.shard_size) flush_shard();
}

void ShardWriter::add_raw(const uint8_t* hwc, int32_t label) {
  if (o_.layout != Layout::kRaw) throw UserError("add_raw on a dataset of layout jpeg");
  check_label(label);
  const size_t n = static_cast<size_t>(o_.image_height) * o_.image_width * 3;
  images_.insert(images_.end(), hwc, hwc + n);
  labels_.push_back(label);
  ++total_;
  if (static_cast<int64_t>(labels_.size()) == o_.shard_size) flush_shard();
}

void ShardWriter::flush_shard() {
  if (labels_.empty()) return;
  const int index = static_cast<int>(manifest_.shards.size());
  const std::string name = shard_file_name(index);
  const std::string final_path = (fs::path(o_.dir) / name).string();
  const std::string tmp = (fs::path(o_.dir) / ("." + name + ".tmp")).string();
  temporaries_.push_back(tmp);
  const hsize_t n = labels_.size();
  {
    H5Id file{H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
    if (!file.valid()) throw UserError("cannot create " + tmp + ": check that the output directory is writable");
    if (o_.layout == Layout::kJpeg) {
      const hsize_t bytes = images_.size();
      write_dataset(file.get(), kImages, {bytes}, {std::min<hsize_t>(bytes, 1 << 20)}, H5T_NATIVE_UINT8, H5T_STD_U8LE,
                    images_.data());
      write_dataset(file.get(), kOffsets, {n + 1}, {}, H5T_NATIVE_UINT64, H5T_STD_U64LE, offsets_.data());
    } else {
      const hsize_t h = o_.image_height, w = o_.image_width;
      // About 256 KiB per chunk, at least one image: random reads stay cheap.
      const hsize_t rows = std::clamp<hsize_t>((256 << 10) / (h * w * 3), 1, n);
      write_dataset(file.get(), kImages, {n, h, w, 3}, {rows, h, w, 3}, H5T_NATIVE_UINT8, H5T_STD_U8LE,
                    images_.data());
    }
    write_dataset(file.get(), kLabels, {n}, {}, H5T_NATIVE_INT32, H5T_STD_I32LE, labels_.data());
    const int32_t version = kFormatVersion, classes = o_.num_classes;
    write_attr(file.get(), kAttrFormatVersion, H5T_NATIVE_INT32, H5T_STD_I32LE, &version);
    write_attr(file.get(), kAttrNumClasses, H5T_NATIVE_INT32, H5T_STD_I32LE, &classes);
    write_string_attr(file.get(), kAttrLayout, layout_name(o_.layout));
    write_string_attr(file.get(), kAttrOrigin, o_.origin);
    H5_CHECK(H5Fflush(file.get(), H5F_SCOPE_GLOBAL));
  }
  const uint64_t checksum = fnv1a64_file(tmp);
  std::error_code ec;
  fs::rename(tmp, final_path, ec);
  if (ec) throw UserError("cannot rename " + tmp + " to " + final_path + ": " + ec.message());
  temporaries_.back() = final_path;
  manifest_.shards.push_back({name, static_cast<int64_t>(n), checksum});
  images_.clear();
  offsets_.assign(1, 0);
  labels_.clear();
}

Manifest ShardWriter::finish() {
  if (finished_) return manifest_;
  if (total_ == 0) throw UserError("no samples were written to " + o_.dir);
  flush_shard();
  manifest_.total_samples = total_;
  const std::string final_path = (fs::path(o_.dir) / kManifestName).string();
  const std::string tmp = (fs::path(o_.dir) / ".manifest.json.tmp").string();
  temporaries_.push_back(tmp);
  write_manifest_file(tmp, manifest_);
  std::error_code ec;
  fs::rename(tmp, final_path, ec);
  if (ec) throw UserError("cannot rename " + tmp + " to " + final_path + ": " + ec.message());
  finished_ = true;
  return manifest_;
}

}  // namespace rn::shards
