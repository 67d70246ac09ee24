#include "trainer/checkpoint/checkpoint_dir.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <regex>

#include "trainer/checkpoint/checkpoint_reader.h"
#include "trainer/core/error.h"

namespace rn {
namespace fs = std::filesystem;

std::string checkpoint_file_name(int64_t step) { return fmt::format("checkpoint-{:08}.h5", step); }

std::vector<CheckpointEntry> list_checkpoints(const std::string& dir) {
  static const std::regex name_re(R"(checkpoint-(\d+)\.h5)");
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (e.is_regular_file(ec) && std::regex_match(name, m, name_re))
      out.push_back({std::stoll(m[1].str()), e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step > b.step; });
  return out;
}

std::optional<CheckpointInfo> find_latest_checkpoint(const std::string& dir, std::vector<std::string>* skipped) {
  for (const auto& e : list_checkpoints(dir)) {
    try {
      return read_checkpoint_info(e.path);
    } catch (const UserError& err) {
      if (skipped) skipped->push_back(err.what());
    }
  }
  return std::nullopt;
}

void after_checkpoint_saved(const std::string& dir, const std::string& newest, int keep) {
  std::error_code ec;
  const fs::path link = fs::path(dir) / "checkpoint.h5";
  const fs::path tmp_link = fs::path(dir) / ".checkpoint.h5.link";
  fs::remove(tmp_link, ec);
  fs::create_symlink(fs::path(newest).filename(), tmp_link, ec);
  if (ec) throw UserError("cannot create link " + tmp_link.string() + ": " + ec.message());
  if (std::rename(tmp_link.c_str(), link.c_str()) != 0)
    throw UserError("cannot replace " + link.string() + " (a file from an older version? remove it)");
  const auto all = list_checkpoints(dir);
  for (size_t i = size_t(std::max(keep, 1)); i < all.size(); ++i)
    if (fs::path(all[i].path).filename() != fs::path(newest).filename()) fs::remove(all[i].path, ec);
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(".checkpoint-") && name.ends_with(".h5.tmp")) fs::remove(e.path(), ec);
  }
}

std::string set_aside_checkpoints(const std::string& dir, int64_t keep_up_to) {
  std::vector<CheckpointEntry> newer;
  for (const auto& e : list_checkpoints(dir))
    if (e.step > keep_up_to) newer.push_back(e);
  if (newer.empty()) return "";
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::gmtime(&now));
  fs::path aside = fs::path(dir) / (std::string("superseded-") + stamp);
  for (int i = 2; fs::exists(aside); ++i) aside = fs::path(dir) / fmt::format("superseded-{}-{}", stamp, i);
  std::error_code ec;
  fs::create_directories(aside, ec);
  if (ec) throw UserError("cannot create " + aside.string() + ": " + ec.message());
  for (const auto& e : newer) {
    fs::rename(e.path, aside / fs::path(e.path).filename(), ec);
    if (ec) throw UserError("cannot move " + e.path + " to " + aside.string() + ": " + ec.message());
  }
  const fs::path link = fs::path(dir) / "checkpoint.h5";
  if (fs::is_symlink(link, ec)) fs::remove(link, ec);  // it pointed at a file that moved
  return aside.string();
}

}  // namespace rn
