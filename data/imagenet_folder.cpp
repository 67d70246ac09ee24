#include "data/imagenet_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "trainer/core/error.h"

namespace rn::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kImageKinds = "*.JPEG, *.jpg, *.jpeg";
constexpr const char* kKaggleHeader = "ImageId,PredictionString";

// "a, b, c and 7 more": enough to find the problem without flooding the terminal.
std::string some_of(const std::vector<std::string>& v, size_t shown = 5) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < shown; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > shown) s += " and " + std::to_string(v.size() - shown) + " more";
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// Splits on any of `separators`, dropping empty tokens.
std::vector<std::string> tokens(const std::string& s, const char* separators) {
  std::vector<std::string> out;
  size_t b = 0;
  while ((b = s.find_first_not_of(separators, b)) != std::string::npos) {
    const size_t e = s.find_first_of(separators, b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    b = e;
  }
  return out;
}

bool is_index(const std::string& s) {
  const auto digit = [](unsigned char c) { return std::isdigit(c) != 0; };
  return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), digit);
}

// One directory's entries, not recursive: sub-folders and images sorted by name, the rest ignored.
struct DirListing {
  std::vector<fs::path> dirs, images;
  std::vector<std::string> ignored;
};

DirListing list_dir(const fs::path& dir) {
  DirListing out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    std::error_code ignore;
    const bool is_dir = it->is_directory(ignore);
    if (name.starts_with('.'))
      out.ignored.push_back(p.string() + (is_dir ? "/" : ""));
    else if (is_dir)
      out.dirs.push_back(p);
    else if (is_image_file_name(name) && it->is_regular_file(ignore))
      out.images.push_back(p);
    else
      out.ignored.push_back(p.string());
  }
  if (ec) throw UserError("cannot list " + dir.string() + ": " + ec.message());
  const auto by_name = [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  };
  std::sort(out.dirs.begin(), out.dirs.end(), by_name);
  std::sort(out.images.begin(), out.images.end(), by_name);
  return out;
}

void require_directory(const std::string& src) {
  if (!fs::exists(src)) throw UserError("image folder " + src + " does not exist");
  if (!fs::is_directory(src)) throw UserError("image folder " + src + " is not a directory");
}

std::map<std::string, int32_t> index_of(const std::vector<std::string>& names) {
  std::map<std::string, int32_t> m;
  for (size_t k = 0; k < names.size(); ++k) m.emplace(names[k], static_cast<int32_t>(k));
  return m;
}

LabelEntry parse_pair(const std::string& line, const std::string& where, int n) {
  const std::vector<std::string> t = tokens(line, " \t,");
  if (t.size() != 2)
    throw UserError(where + ":" + std::to_string(n) +
                    ": expected 'FILENAME CLASS' (separated by whitespace or a comma), got '" + line + "'");
  return {t[0], t[1], n};
}

LabelEntry parse_kaggle_row(const std::string& line, const std::string& where, int n) {
  const auto comma = line.find(',');
  const std::vector<std::string> prediction =
      comma == std::string::npos ? std::vector<std::string>{} : tokens(line.substr(comma + 1), " \t");
  if (comma == std::string::npos || trim(line.substr(0, comma)).empty() || prediction.empty())
    throw UserError(where + ":" + std::to_string(n) +
                    ": expected 'ImageId,PredictionString' with a class first in PredictionString, got '" + line + "'");
  return {trim(line.substr(0, comma)), prediction[0], n};
}

// The class list of a flat folder without a given one: the sorted distinct names.
std::vector<std::string> classes_of(const std::vector<LabelEntry>& entries, const std::string& where) {
  const bool all_indices =
      std::all_of(entries.begin(), entries.end(), [](const LabelEntry& e) { return is_index(e.cls); });
  if (all_indices)
    throw UserError(where + " gives class indices (e.g. '" + entries[0].cls + "' on line " +
                    std::to_string(entries[0].line) +
                    ") but no class list says which class each index is: pass --classes DIR, a converted dataset "
                    "(e.g. the train set) whose classes the indices refer to");
  std::set<std::string> names;
  for (const auto& e : entries) names.insert(e.cls);
  return {names.begin(), names.end()};
}

int32_t resolve_class(const LabelEntry& e, const std::map<std::string, int32_t>& index,
                      const std::optional<ClassList>& classes, const std::string& where) {
  if (auto it = index.find(e.cls); it != index.end()) return it->second;
  // Only a given list can miss a name: a derived one holds every name of the file.
  RN_CHECK(classes.has_value(), "class '" + e.cls + "' missing from the class list derived from " + where);
  const std::string at = where + ":" + std::to_string(e.line) + ": ";
  const size_t n = classes->names.size();
  if (is_index(e.cls)) {
    const size_t k = std::stoul(e.cls);
    if (k < n) return static_cast<int32_t>(k);
    throw UserError(at + "class index " + e.cls + " is out of range for the " + std::to_string(n) + " classes of " +
                    classes->source);
  }
  throw UserError(at + "class '" + e.cls + "' is not one of the " + std::to_string(n) + " classes of " +
                  classes->source + " (e.g. " + some_of(classes->names, 3) +
                  "): is it the class list these labels were made for?");
}

}  // namespace

bool is_image_file_name(const std::string& file_name) {
  if (file_name.empty() || file_name[0] == '.') return false;
  const auto dot = file_name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = file_name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == "jpeg" || ext == "jpg";
}

ImageList scan_class_folders(const std::string& src, const std::optional<ClassList>& classes) {
  require_directory(src);
  DirListing top = list_dir(src);
  if (top.dirs.empty()) {
    if (!top.images.empty())
      throw UserError(src + " has no class sub-folders but holds " + std::to_string(top.images.size()) +
                      " images directly: a flat (validation) folder needs its labels file (--labels FILE)");
    throw UserError(src + " holds no class sub-folders: expected " + src +
                    "/<class>/<image>.JPEG, e.g. train/n01440764/n01440764_10026.JPEG");
  }
  ImageList out;
  out.ignored = std::move(top.ignored);
  for (const auto& p : top.images) out.ignored.push_back(p.string());  // loose files next to class folders
  std::vector<std::string> folders;
  for (const auto& d : top.dirs) folders.push_back(d.filename().string());
  out.class_names = classes ? classes->names : folders;
  const auto index = index_of(out.class_names);
  std::vector<std::string> unknown;
  for (const auto& f : folders)
    if (!index.count(f)) unknown.push_back(f);
  if (!unknown.empty())
    throw UserError(std::to_string(unknown.size()) + " folder(s) of " + src + " are not classes of " + classes->source +
                    ": " + some_of(unknown) + " (its " + std::to_string(out.class_names.size()) + " classes are e.g. " +
                    some_of(out.class_names, 3) + "): is it the class list of this dataset?");
  // Class-major in label order (the folder order unless a class list says otherwise).
  std::stable_sort(top.dirs.begin(), top.dirs.end(), [&](const fs::path& a, const fs::path& b) {
    return index.at(a.filename().string()) < index.at(b.filename().string());
  });
  std::vector<std::string> empty;
  for (const auto& d : top.dirs) {
    DirListing in = list_dir(d);
    const int32_t label = index.at(d.filename().string());
    for (auto& p : in.dirs) in.ignored.push_back(p.string() + "/");
    out.ignored.insert(out.ignored.end(), in.ignored.begin(), in.ignored.end());
    if (in.images.empty()) empty.push_back(d.filename().string());
    for (const auto& p : in.images) out.images.push_back({p.string(), label});
  }
  if (!empty.empty()) {
    std::string hint = "add their images or remove the folders";
    if (empty.size() == folders.size())
      hint = "if " + src + " is the dataset's root, pass the split folder that holds the class folders, e.g. --src " +
             (fs::path(src) / folders[0]).string();
    throw UserError(std::to_string(empty.size()) + " class folder(s) of " + src + " hold no images (" + kImageKinds +
                    "): " + some_of(empty) + ": " + hint);
  }
  std::sort(out.ignored.begin(), out.ignored.end());
  return out;
}

std::vector<LabelEntry> parse_labels(std::istream& in, const std::string& where) {
  std::vector<LabelEntry> out;
  bool first = true, kaggle = false;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (n == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // UTF-8 byte order mark
    const std::string t = trim(line);
    if (t.empty()) continue;
    if (std::exchange(first, false) && t == kKaggleHeader) {
      kaggle = true;
      continue;
    }
    out.push_back(kaggle ? parse_kaggle_row(t, where, n) : parse_pair(t, where, n));
  }
  if (out.empty())
    throw UserError(where + " holds no labels: expected lines 'FILENAME CLASS' or Kaggle's LOC_val_solution.csv (" +
                    kKaggleHeader + ")");
  return out;
}

ImageList scan_flat_folder(const std::string& src, const std::string& labels_file,
                           const std::optional<ClassList>& classes) {
  require_directory(src);
  if (!fs::is_regular_file(labels_file)) throw UserError("labels file " + labels_file + " does not exist");
  std::ifstream in(labels_file);
  if (!in) throw UserError("cannot read the labels file " + labels_file);
  const std::vector<LabelEntry> entries = parse_labels(in, labels_file);

  DirListing listing = list_dir(src);
  if (listing.images.empty())
    throw UserError(src + " holds no images (" + kImageKinds + ")" +
                    (listing.dirs.empty() ? std::string()
                                          : ": it has sub-folders; without --labels they are read as class folders"));
  ImageList out;
  out.ignored = std::move(listing.ignored);
  for (const auto& d : listing.dirs) out.ignored.push_back(d.string() + "/");
  std::sort(out.ignored.begin(), out.ignored.end());

  // An entry names an image by file name or by name without extension; -1 marks a stem two images share.
  std::map<std::string, int64_t> by_name, by_stem;
  for (size_t i = 0; i < listing.images.size(); ++i) {
    by_name[listing.images[i].filename().string()] = static_cast<int64_t>(i);
    auto [it, fresh] = by_stem.emplace(listing.images[i].stem().string(), static_cast<int64_t>(i));
    if (!fresh) it->second = -1;
  }
  std::vector<const LabelEntry*> entry_of(listing.images.size(), nullptr);
  std::vector<std::string> strangers;
  for (const auto& e : entries) {
    const std::string key = fs::path(e.image).filename().string();
    const auto named = by_name.find(key), stemmed = by_stem.find(key);
    if (named == by_name.end() && stemmed == by_stem.end()) {
      strangers.push_back(e.image + " (line " + std::to_string(e.line) + ")");
      continue;
    }
    const int64_t i = named != by_name.end() ? named->second : stemmed->second;
    const std::string at = labels_file + ":" + std::to_string(e.line) + ": ";
    if (i < 0)
      throw UserError(at + "'" + e.image + "' matches several images of " + src + ": name one with its extension");
    const LabelEntry*& slot = entry_of[static_cast<size_t>(i)];
    if (slot)
      throw UserError(at + "'" + e.image + "' is labelled twice (also on line " + std::to_string(slot->line) + ")");
    slot = &e;
  }
  if (!strangers.empty())
    throw UserError(labels_file + " names " + std::to_string(strangers.size()) + " file(s) that are not images in " +
                    src + ": " + some_of(strangers) + ": is it the labels file of this folder?");
  std::vector<std::string> unlabelled;
  for (size_t i = 0; i < listing.images.size(); ++i)
    if (!entry_of[i]) unlabelled.push_back(listing.images[i].filename().string());
  if (!unlabelled.empty())
    throw UserError(std::to_string(unlabelled.size()) + " image(s) in " + src + " have no label in " + labels_file +
                    ": " + some_of(unlabelled) + ": add them to the labels file or move them out of the folder");

  out.class_names = classes ? classes->names : classes_of(entries, labels_file);
  const auto index = index_of(out.class_names);
  for (size_t i = 0; i < listing.images.size(); ++i)
    out.images.push_back({listing.images[i].string(), resolve_class(*entry_of[i], index, classes, labels_file)});
  return out;
}

}  // namespace rn::data
