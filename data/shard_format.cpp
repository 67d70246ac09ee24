#include "data/shard_format.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "trainer/core/error.h"

namespace rn::shards {

namespace fs = std::filesystem;
using nlohmann::json;

std::string layout_name(Layout l) { return l == Layout::kJpeg ? "jpeg" : "raw"; }

Layout parse_layout(const std::string& s, const std::string& where) {
  if (s == "jpeg") return Layout::kJpeg;
  if (s == "raw") return Layout::kRaw;
  throw UserError(where + ": layout '" + s + "' is not known; expected \"jpeg\" or \"raw\"");
}

std::string shard_file_name(int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard-%05d.h5", index);
  return buf;
}

uint64_t fnv1a64_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot read " + path + " to check its checksum");
  std::vector<char> buf(1 << 20);
  uint64_t h = 0xcbf29ce484222325ull;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = fnv1a64(buf.data(), static_cast<size_t>(in.gcount()), h);
  }
  if (in.bad()) throw UserError("error while reading " + path);
  return h;
}

std::string checksum_hex(uint64_t c) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(c));
  return buf;
}

namespace {

[[noreturn]] void bad(const std::string& file, const std::string& field, const std::string& what) {
  throw UserError(file + ": field '" + field + "' " + what);
}

const json& need(const json& j, const char* key, const std::string& file, const std::string& prefix = "") {
  if (!j.is_object() || !j.contains(key)) bad(file, prefix + key, "is missing");
  return j.at(key);
}

int64_t need_int(const json& j, const char* key, const std::string& file, int64_t min, const std::string& prefix = "") {
  const json& v = need(j, key, file, prefix);
  if (!v.is_number_integer()) bad(file, prefix + key, "must be an integer, found " + v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < min) bad(file, prefix + key, "must be >= " + std::to_string(min) + ", found " + std::to_string(x));
  return x;
}

std::string need_string(const json& j, const char* key, const std::string& file, const std::string& prefix = "") {
  const json& v = need(j, key, file, prefix);
  if (!v.is_string()) bad(file, prefix + key, "must be a string, found " + v.dump());
  return v.get<std::string>();
}

}  // namespace

Manifest read_manifest(const std::string& dir) {
  if (!fs::is_directory(dir)) throw UserError("dataset directory " + dir + " does not exist");
  const std::string file = (fs::path(dir) / kManifestName).string();
  std::ifstream in(file);
  if (!in)
    throw UserError(file + " is missing: " + dir +
                    " is not a dataset, or its writer did not finish (the manifest is written last)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw UserError(file + " is not valid JSON: " + e.what());
  }
  Manifest m;
  m.format_version = static_cast<int>(need_int(j, "format_version", file, 0));
  if (m.format_version != kFormatVersion)
    bad(file, "format_version",
        "is " + std::to_string(m.format_version) + " but this build reads version " + std::to_string(kFormatVersion));
  m.name = need_string(j, "name", file);
  m.origin = need_string(j, "origin", file);
  m.layout = parse_layout(need_string(j, "layout", file), file + ": field 'layout'");
  m.num_classes = static_cast<int>(need_int(j, "num_classes", file, 1));
  const json& names = need(j, "class_names", file);
  if (!names.is_array()) bad(file, "class_names", "must be a list of strings");
  for (const auto& n : names) {
    if (!n.is_string()) bad(file, "class_names", "must be a list of strings, found " + n.dump());
    m.class_names.push_back(n.get<std::string>());
  }
  if (static_cast<int>(m.class_names.size()) != m.num_classes)
    bad(file, "class_names", "has " + std::to_string(m.class_names.size()) + " entries but num_classes is " +
                                 std::to_string(m.num_classes));
  if (m.layout == Layout::kRaw) {
    m.image_height = static_cast<int>(need_int(j, "image_height", file, 1));
    m.image_width = static_cast<int>(need_int(j, "image_width", file, 1));
  }
  m.total_samples = need_int(j, "total_samples", file, 0);
  const std::string algo = need_string(j, "checksum_algorithm", file);
  if (algo != kChecksumAlgorithm) bad(file, "checksum_algorithm", "is '" + algo + "'; expected \"fnv1a64\"");
  const json& shards = need(j, "shards", file);
  if (!shards.is_array()) bad(file, "shards", "must be a list");
  int64_t sum = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string prefix = "shards[" + std::to_string(i) + "].";
    ShardInfo s;
    s.file = need_string(shards[i], "file", file, prefix);
    if (s.file.empty() || s.file.find('/') != std::string::npos || s.file == "." || s.file == "..")
      bad(file, prefix + "file", "must be a plain file name inside the dataset directory, found '" + s.file + "'");
    s.samples = need_int(shards[i], "samples", file, 1, prefix);
    const std::string c = need_string(shards[i], "checksum", file, prefix);
    if (c.size() != 16 || c.find_first_not_of("0123456789abcdef") != std::string::npos)
      bad(file, prefix + "checksum", "must be 16 lower-case hex digits, found '" + c + "'");
    s.checksum = std::stoull(c, nullptr, 16);
    sum += s.samples;
    m.shards.push_back(s);
  }
  if (sum != m.total_samples)
    bad(file, "total_samples", "is " + std::to_string(m.total_samples) + " but the shards hold " + std::to_string(sum));
  return m;
}

void write_manifest_file(const std::string& path, const Manifest& m) {
  json j;
  j["format_version"] = m.format_version;
  j["name"] = m.name;
  j["origin"] = m.origin;
  j["layout"] = layout_name(m.layout);
  j["num_classes"] = m.num_classes;
  j["class_names"] = m.class_names;
  if (m.layout == Layout::kRaw) {
    j["image_height"] = m.image_height;
    j["image_width"] = m.image_width;
  }
  j["total_samples"] = m.total_samples;
  j["checksum_algorithm"] = kChecksumAlgorithm;
  j["shards"] = json::array();
  for (const auto& s : m.shards)
    j["shards"].push_back({{"file", s.file}, {"samples", s.samples}, {"checksum", checksum_hex(s.checksum)}});
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) throw UserError("cannot write " + path + ": check that the output directory is writable");
}

}  // namespace rn::shards
