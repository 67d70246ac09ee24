#include "data/shard_reader.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "data/jpeg_codec.h"
#include "trainer/checkpoint/h5_io.h"
#include "trainer/core/error.h"

namespace rn::shards {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void bad(const std::string& file, const std::string& field, const std::string& what) {
  throw UserError(file + ": " + field + " " + what);
}

std::string dims_str(const std::vector<hsize_t>& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

struct IntType {
  size_t size;
  H5T_sign_t sign;
  const char* name;
};
constexpr IntType kU8{1, H5T_SGN_NONE, "uint8"};
constexpr IntType kU64{8, H5T_SGN_NONE, "uint64"};
constexpr IntType kI32{4, H5T_SGN_2, "int32"};

std::string type_str(hid_t t) {
  const H5T_class_t c = H5Tget_class(t);
  const size_t size = H5Tget_size(t);
  if (c == H5T_INTEGER)
    return std::string(H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(size * 8);
  if (c == H5T_FLOAT) return "float" + std::to_string(size * 8);
  if (c == H5T_STRING) return "string";
  return "a non-integer type";
}

// Opens dataset `name` and checks its type and rank; returns it and its extents.
H5Id open_checked(hid_t file, const std::string& path, const char* name, const IntType& want, int rank,
                  std::vector<hsize_t>* dims) {
  const std::string field = std::string("dataset /") + name;
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) bad(path, field, "is missing");
  H5Id set{H5Dopen2(file, name, H5P_DEFAULT), H5Dclose};
  if (!set.valid()) bad(path, field, "cannot be opened as a dataset");
  H5Id type{H5Dget_type(set.get()), H5Tclose};
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != want.size ||
      H5Tget_sign(type.get()) != want.sign)
    bad(path, field, std::string("has type ") + type_str(type.get()) + ", expected " + want.name);
  H5Id space{H5Dget_space(set.get()), H5Sclose};
  const int r = H5Sget_simple_extent_ndims(space.get());
  if (r != rank) bad(path, field, "has rank " + std::to_string(r) + ", expected " + std::to_string(rank));
  dims->assign(static_cast<size_t>(rank), 0);
  H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims->data(), nullptr));
  return set;
}

void read_all(hid_t set, hid_t mem_type, void* out) {
  H5_CHECK(H5Dread(set, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out));
}

struct Attr {
  H5Id attr, type;
};

// Opens attribute `name` of `file`, which must exist and be of class `cls`
// (`expected` names it in the error).
Attr open_attr(hid_t file, const std::string& path, const char* name, H5T_class_t cls, const char* expected) {
  const std::string field = std::string("attribute ") + name;
  if (H5Aexists(file, name) <= 0) bad(path, field, "is missing");
  Attr a{H5Id{H5Aopen(file, name, H5P_DEFAULT), H5Aclose}, H5Id{}};
  a.type = H5Id{H5Aget_type(a.attr.get()), H5Tclose};
  if (H5Tget_class(a.type.get()) != cls)
    bad(path, field, "has type " + type_str(a.type.get()) + ", expected " + expected);
  return a;
}

int64_t read_int_attr(hid_t file, const std::string& path, const char* name) {
  const Attr a = open_attr(file, path, name, H5T_INTEGER, "an integer");
  H5Id space{H5Aget_space(a.attr.get()), H5Sclose};
  if (H5Sget_simple_extent_npoints(space.get()) != 1) bad(path, std::string("attribute ") + name, "must be a single value");
  int64_t v = 0;
  H5_CHECK(H5Aread(a.attr.get(), H5T_NATIVE_INT64, &v));
  return v;
}

std::string read_string_attr(hid_t file, const std::string& path, const char* name) {
  const Attr a = open_attr(file, path, name, H5T_STRING, "a string");
  return h5::read_string(a.attr.get());
}

}  // namespace

ShardReader::ShardReader(const std::string& dir) : dir_(dir), manifest_(read_manifest(dir)) {
  starts_.push_back(0);
  for (const auto& s : manifest_.shards) starts_.push_back(starts_.back() + s.samples);
  shards_.resize(manifest_.shards.size());
  for (int i = 0; i < static_cast<int>(shards_.size()); ++i) open_shard(i);
}

void ShardReader::open_shard(int i) {
  H5Quiet quiet;
  const ShardInfo& info = manifest_.shards[static_cast<size_t>(i)];
  Shard& sh = shards_[static_cast<size_t>(i)];
  sh.path = (fs::path(dir_) / info.file).string();
  if (!fs::is_regular_file(sh.path))
    throw UserError(sh.path + " is missing (listed in " + kManifestName + " as shard " + std::to_string(i) + ")");
  sh.file = H5Id{H5Fopen(sh.path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (!sh.file.valid()) throw UserError(sh.path + " cannot be opened as an HDF5 file (damaged or not HDF5)");
  const hid_t f = sh.file.get();
  const int64_t version = read_int_attr(f, sh.path, kAttrFormatVersion);
  if (version != kFormatVersion)
    bad(sh.path, "attribute format_version", "is " + std::to_string(version) + ", expected " +
                                                 std::to_string(kFormatVersion));
  const int64_t classes = read_int_attr(f, sh.path, kAttrNumClasses);
  if (classes != manifest_.num_classes)
    bad(sh.path, "attribute num_classes",
        "is " + std::to_string(classes) + ", expected " + std::to_string(manifest_.num_classes) + " (the manifest's)");
  const std::string layout = read_string_attr(f, sh.path, kAttrLayout);
  if (layout != layout_name(manifest_.layout))
    bad(sh.path, "attribute layout", "is '" + layout + "', expected '" + layout_name(manifest_.layout) + "'");
  read_string_attr(f, sh.path, kAttrOrigin);

  const hsize_t n = static_cast<hsize_t>(info.samples);
  std::vector<hsize_t> dims;
  {
    H5Id labels = open_checked(f, sh.path, kLabels, kI32, 1, &dims);
    if (dims[0] != n)
      bad(sh.path, "dataset /labels", "has extent " + dims_str(dims) + ", expected (" + std::to_string(n) +
                                          ",) (samples in the manifest)");
    sh.labels.resize(n);
    read_all(labels.get(), H5T_NATIVE_INT32, sh.labels.data());
  }
  if (manifest_.layout == Layout::kJpeg) {
    sh.images = open_checked(f, sh.path, kImages, kU8, 1, &dims);
    const hsize_t bytes = dims[0];
    H5Id offsets = open_checked(f, sh.path, kOffsets, kU64, 1, &dims);
    if (dims[0] != n + 1)
      bad(sh.path, "dataset /offsets", "has extent " + dims_str(dims) + ", expected (" + std::to_string(n + 1) +
                                           ",) (samples + 1)");
    sh.offsets.resize(n + 1);
    read_all(offsets.get(), H5T_NATIVE_UINT64, sh.offsets.data());
    if (sh.offsets[0] != 0) bad(sh.path, "dataset /offsets", "[0] is " + std::to_string(sh.offsets[0]) + ", expected 0");
    for (hsize_t k = 0; k < n; ++k)
      if (sh.offsets[k + 1] <= sh.offsets[k])
        bad(sh.path, "dataset /offsets", "is not strictly increasing at index " + std::to_string(k + 1) + " (" +
                                             std::to_string(sh.offsets[k]) + " then " +
                                             std::to_string(sh.offsets[k + 1]) + ")");
    if (sh.offsets[n] != bytes)
      bad(sh.path, "dataset /offsets", "[" + std::to_string(n) + "] is " + std::to_string(sh.offsets[n]) +
                                           ", expected " + std::to_string(bytes) + " (the extent of /images)");
  } else {
    sh.images = open_checked(f, sh.path, kImages, kU8, 4, &dims);
    const std::vector<hsize_t> want{n, static_cast<hsize_t>(manifest_.image_height),
                                    static_cast<hsize_t>(manifest_.image_width), 3};
    if (dims != want) bad(sh.path, "dataset /images", "has extent " + dims_str(dims) + ", expected " + dims_str(want));
  }
}

std::pair<int, int64_t> ShardReader::locate(int64_t index) const {
  if (index < 0 || index >= size())
    throw UserError("sample index " + std::to_string(index) + " is out of range [0, " + std::to_string(size()) + ")");
  const auto it = std::upper_bound(starts_.begin(), starts_.end(), index);
  const int shard = static_cast<int>(it - starts_.begin()) - 1;
  return {shard, index - starts_[static_cast<size_t>(shard)]};
}

int32_t ShardReader::label(int64_t index) const {
  const auto [s, k] = locate(index);
  return shards_[static_cast<size_t>(s)].labels[static_cast<size_t>(k)];
}

size_t ShardReader::sample_bytes(int64_t index) const {
  if (manifest_.layout != Layout::kJpeg)
    return static_cast<size_t>(manifest_.image_height) * static_cast<size_t>(manifest_.image_width) * 3;
  const auto [s, k] = locate(index);
  const auto& offsets = shards_[static_cast<size_t>(s)].offsets;
  return static_cast<size_t>(offsets[static_cast<size_t>(k) + 1] - offsets[static_cast<size_t>(k)]);
}

void ShardReader::read_bytes(int64_t index, uint8_t* dst) {
  const auto [s, k] = locate(index);
  Shard& sh = shards_[static_cast<size_t>(s)];
  H5Id file_space{H5_CHECK(H5Dget_space(sh.images.get())), H5Sclose};
  if (manifest_.layout == Layout::kJpeg) {
    const hsize_t start = sh.offsets[static_cast<size_t>(k)], count = sh.offsets[static_cast<size_t>(k) + 1] - start;
    H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr));
    H5Id mem{H5_CHECK(H5Screate_simple(1, &count, nullptr)), H5Sclose};
    H5_CHECK(H5Dread(sh.images.get(), H5T_NATIVE_UINT8, mem.get(), file_space.get(), H5P_DEFAULT, dst));
  } else {
    const hsize_t h = manifest_.image_height, w = manifest_.image_width;
    const hsize_t start[4] = {static_cast<hsize_t>(k), 0, 0, 0}, count[4] = {1, h, w, 3};
    H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr));
    H5Id mem{H5_CHECK(H5Screate_simple(4, count, nullptr)), H5Sclose};
    H5_CHECK(H5Dread(sh.images.get(), H5T_NATIVE_UINT8, mem.get(), file_space.get(), H5P_DEFAULT, dst));
  }
}

void ShardReader::read(int64_t index, Sample& out) {
  out.label = label(index);
  out.data.resize(sample_bytes(index));
  read_bytes(index, out.data.data());
}

VerifyReport verify_dataset(const std::string& dir, size_t max_problems) {
  VerifyReport r;
  const Manifest m = read_manifest(dir);  // throws: nothing else to check
  auto problem = [&](const std::string& p) {
    if (r.problems.size() < max_problems) r.problems.push_back(p);
    else if (r.problems.size() == max_problems) r.problems.push_back("... (more problems not listed)");
  };
  for (const auto& s : m.shards) {
    const std::string path = (fs::path(dir) / s.file).string();
    if (!fs::is_regular_file(path)) {
      problem(path + ": shard file is missing");
      continue;
    }
    const uint64_t c = fnv1a64_file(path);
    if (c != s.checksum)
      problem(path + ": checksum mismatch: file has fnv1a64 " + checksum_hex(c) + ", manifest says " +
              checksum_hex(s.checksum));
  }
  std::optional<ShardReader> reader;
  try {
    reader.emplace(dir);
  } catch (const UserError& e) {
    problem(e.what());
    return r;
  }
  r.class_counts.assign(static_cast<size_t>(m.num_classes), 0);
  Sample sample;
  for (int64_t i = 0; i < reader->size(); ++i) {
    const auto [s, k] = reader->locate(i);
    const std::string where = m.shards[static_cast<size_t>(s)].file + " index " + std::to_string(k) +
                              " (sample " + std::to_string(i) + ")";
    ++r.samples_checked;
    const int32_t label = reader->label(i);
    if (label < 0 || label >= m.num_classes)
      problem(where + ": label " + std::to_string(label) + " is out of range [0, " + std::to_string(m.num_classes) +
              ")");
    else
      ++r.class_counts[static_cast<size_t>(label)];
    if (m.layout != Layout::kJpeg) continue;
    try {
      reader->read(i, sample);
      decode_jpeg(sample.data.data(), sample.data.size());
      ++r.images_decoded;
    } catch (const UserError& e) {
      problem(where + ": " + e.what());
    } catch (const InternalError& e) {
      problem(where + ": cannot read: " + e.what());
    }
  }
  return r;
}

}  // namespace rn::shards
