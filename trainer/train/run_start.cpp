#include "trainer/train/run_start.h"

#include <fmt/format.h>

#include <map>
#include <sstream>

#include "trainer/checkpoint/checkpoint_dir.h"
#include "trainer/core/error.h"

namespace rn {
namespace {

// "section.key" -> value of an INI text written by to_ini.
std::map<std::string, std::string> ini_values(const std::string& ini) {
  std::map<std::string, std::string> out;
  std::istringstream in(ini);
  std::string line, section;
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \t\r"));
    s.erase(s.find_last_not_of(" \t\r") + 1);
    return s;
  };
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    const auto eq = line.find('=');
    if (eq != std::string::npos) out[section + "." + trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return out;
}

}  // namespace

RunStart resolve_run_start(const Config& cfg) {
  RunStart s;
  const auto& k = cfg.checkpoint;
  if (k.resume == "auto") {
    std::vector<std::string> skipped;
    s.resume = find_latest_checkpoint(cfg.train.output_dir, &skipped);
    for (const auto& why : skipped) s.notes.push_back("--resume auto: skipped " + why);
    if (!s.resume)
      s.notes.push_back("--resume auto: no complete checkpoint in " + cfg.train.output_dir + "; starting fresh");
  } else if (!k.resume.empty()) {
    s.resume = read_checkpoint_info(k.resume);
  }
  if (!s.resume && !k.init_from.empty()) s.init_from = read_checkpoint_info(k.init_from);
  return s;
}

std::vector<std::string> check_resumable(const Config& cfg, const CheckpointInfo& ck, int64_t epoch_size) {
  if (!ck.has_optimizer_state)
    throw UserError("checkpoint " + ck.path +
                    " holds weights only (no optimizer state or data position), so it cannot be resumed; start a "
                    "new run from its weights with --init-from " +
                    ck.path);
  const auto was = ini_values(ck.state.config_ini), now = ini_values(to_ini(cfg));
  // These decide the model or the data order that the checkpoint's weights
  // and cursor belong to: resuming across a change would not be the same run.
  std::string differ;
  for (const char* key : {"model.arch", "model.num_classes", "model.shortcut", "train.seed", "data.source"}) {
    const auto a = was.find(key), b = now.find(key);
    const std::string va = a == was.end() ? "?" : a->second, vb = b == now.end() ? "?" : b->second;
    if (va != vb) differ += fmt::format("\n  {}: checkpoint {}, this run {}", key, va, vb);
  }
  if (!differ.empty())
    throw UserError(
        fmt::format("cannot resume {}: it belongs to another run; these settings differ:{}\nResume with "
                    "the checkpoint's settings (--resume {} without --config uses them), or start a "
                    "new run from its weights with --init-from.",
                    ck.path, differ, ck.path));
  if (ck.state.epoch_size != epoch_size)
    throw UserError(
        fmt::format("cannot resume {}: its training epochs drew from {} samples, this run's from {} (a "
                    "different training set?). Resume on the same data, or start a new run with "
                    "--init-from.",
                    ck.path, ck.state.epoch_size, epoch_size));
  std::vector<std::string> notes;
  for (const auto& [key, value] : now) {
    if (key.starts_with("checkpoint.")) continue;
    const auto it = was.find(key);
    const std::string old = it == was.end() ? "(not set)" : it->second;
    if (old != value)
      notes.push_back(fmt::format("resuming with a changed setting: {} = {} (was {})", key, value, old));
  }
  return notes;
}

}  // namespace rn
