#include "trainer/config/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <type_traits>

#include "trainer/core/error.h"
#include "trainer/model/arch.h"

#ifndef RN_VERSION
#define RN_VERSION "unknown"
#endif

namespace rn {
namespace {

namespace po = boost::program_options;

[[noreturn]] void fail(const std::string& msg) { throw UserError("config error: " + msg); }

constexpr const char* kProgram = "resnet-train";
constexpr const char* kSeeHelp = "run 'resnet-train --help' for every option";

// ---------------------------------------------------------------------------
// Value conversion. `where` says where the value came from, for messages.

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

template <class T>
const char* int_type_name() {
  if constexpr (std::is_same_v<T, int>)
    return "an integer";
  else if constexpr (std::is_unsigned_v<T>)
    return "a non-negative integer";
  else
    return "an integer";
}

template <class T>
T parse_integer(const std::string& key, const std::string& raw, const std::string& where) {
  std::string s = trim(raw);
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  T v{};
  const char* b = s.data();
  const char* e = s.data() + s.size();
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec == std::errc::result_out_of_range) {
    fail(fmt::format("{} = '{}' ({}) is out of range; expected {} between {} and {}.", key, raw, where,
                     int_type_name<T>(), std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
  }
  if (s.empty() || ec != std::errc() || p != e) {
    fail(fmt::format("{} = '{}' ({}) is not {}; expected a whole number{}.", key, raw, where, int_type_name<T>(),
                     std::is_unsigned_v<T> ? " >= 0" : ""));
  }
  return v;
}

double parse_double(const std::string& key, const std::string& raw, const std::string& where) {
  std::string s = trim(raw);
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  double v = 0;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  auto [p, ec] = std::from_chars(b, e, v, std::chars_format::general);
  if (s.empty() || ec != std::errc() || p != e || !std::isfinite(v)) {
    fail(
        fmt::format("{} = '{}' ({}) is not a number; expected a finite number such as 0.1 or "
                    "1e-4.",
                    key, raw, where));
  }
  return v;
}

bool parse_bool(const std::string& key, const std::string& raw, const std::string& where) {
  const std::string s = lower(trim(raw));
  if (s == "true" || s == "1" || s == "yes") return true;
  if (s == "false" || s == "0" || s == "no") return false;
  fail(fmt::format("{} = '{}' ({}) is not a boolean; allowed: true, false, 1, 0, yes, no.", key, raw, where));
}

std::vector<double> parse_list(const std::string& key, const std::string& raw, const std::string& where) {
  std::vector<double> out;
  const std::string s = trim(raw);
  if (s.empty()) return out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (trim(item).empty()) {
      fail(
          fmt::format("{} = '{}' ({}) has an empty element; expected a comma-separated list of "
                      "numbers such as '30, 60, 80' (or nothing for an empty list).",
                      key, raw, where));
    }
    out.push_back(parse_double(key, item, where));
  }
  if (s.back() == ',') {
    fail(
        fmt::format("{} = '{}' ({}) ends with a comma; expected a comma-separated list of "
                    "numbers such as '30, 60, 80'.",
                    key, raw, where));
  }
  return out;
}

std::string format_double(double v) { return fmt::format("{}", v); }

std::string format_list(const std::vector<double>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += format_double(v[i]);
  }
  return s;
}

// ---------------------------------------------------------------------------
// The option table: one row per INI key, used for parsing, help, to_ini and
// suggestions.

struct OptionSpec {
  std::string section;
  std::string key;
  std::string metavar;  // INT, FLOAT, BOOL, STRING, LIST
  std::string help;
  std::function<void(Config&, const std::string& full, const std::string& value, const std::string& where)> set;
  std::function<std::string(const Config&)> get;
  std::string full() const { return section + "." + key; }
  bool is_bool() const { return metavar == "BOOL"; }
};

template <class T, class Field>
OptionSpec make(const char* section, const char* key, const char* metavar, const char* help, Field field) {
  OptionSpec o;
  o.section = section;
  o.key = key;
  o.metavar = metavar;
  o.help = help;
  o.set = [field](Config& c, const std::string& full, const std::string& v, const std::string& where) {
    T& dst = field(c);
    if constexpr (std::is_same_v<T, std::string>)
      dst = trim(v);
    else if constexpr (std::is_same_v<T, bool>)
      dst = parse_bool(full, v, where);
    else if constexpr (std::is_same_v<T, double>)
      dst = parse_double(full, v, where);
    else if constexpr (std::is_same_v<T, std::vector<double>>)
      dst = parse_list(full, v, where);
    else
      dst = parse_integer<T>(full, v, where);
  };
  o.get = [field](const Config& c) -> std::string {
    const T& v = field(const_cast<Config&>(c));
    if constexpr (std::is_same_v<T, std::string>)
      return v;
    else if constexpr (std::is_same_v<T, bool>)
      return v ? "true" : "false";
    else if constexpr (std::is_same_v<T, double>)
      return format_double(v);
    else if constexpr (std::is_same_v<T, std::vector<double>>)
      return format_list(v);
    else
      return fmt::format("{}", v);
  };
  return o;
}

#define RN_FIELD(path) \
  [](Config & c) -> auto& { return c.path; }

const std::vector<OptionSpec>& options() {
  static const std::vector<OptionSpec> table = {
      // [model]
      make<std::string>("model", "arch", "NAME",
                        "architecture: resnet18|34|50|101|152, plain18|34, cifar-resnetN, "
                        "cifar-plainN (N = 6n+2 >= 8, e.g. 20, 32, 44, 56, 110, 1202)",
                        RN_FIELD(model.arch)),
      make<int>("model", "num_classes", "INT", "classes of the final layer (>= 2)", RN_FIELD(model.num_classes)),
      make<std::string>("model", "shortcut", "STRING",
                        "shortcut where the shape changes: auto (the arch's own) | A (identity + "
                        "zero padding) | B (1x1 projection) | none (plain net)",
                        RN_FIELD(model.shortcut)),
      make<bool>("model", "zero_init_residual", "BOOL", "start each residual branch's last BN scale at 0",
                 RN_FIELD(model.zero_init_residual)),
      make<bool>("model", "frozen_bn", "BOOL",
                 "BN normalises with its running statistics in training too and does not update "
                 "them (gamma and beta still learn); for fine-tuning with small per-rank batches and "
                 "exact data-parallel equivalence tests",
                 RN_FIELD(model.frozen_bn)),
      // [data]
      make<std::string>("data", "source", "STRING",
                        "training data: synthetic (generated from train.seed) | hdf5 (converter "
                        "shards under data.path)",
                        RN_FIELD(data.source)),
      make<std::string>("data", "train", "PATH",
                        "directory of the training shards (resnet-data); required when "
                        "data.source = hdf5",
                        RN_FIELD(data.train)),
      make<std::string>("data", "val", "PATH", "directory of the validation shards (hdf5; empty: no validation)",
                        RN_FIELD(data.val)),
      make<int>("data", "image_size", "INT", "input side in pixels (>= 8; >= 32 for the ImageNet archs)",
                RN_FIELD(data.image_size)),
      make<int64_t>("data", "synthetic_samples", "INT", "images per synthetic training epoch (>= 1)",
                    RN_FIELD(data.synthetic_samples)),
      make<double>("data", "synthetic_noise", "FLOAT", "noise std-dev of synthetic images (>= 0; larger is harder)",
                   RN_FIELD(data.synthetic_noise)),
      make<int64_t>("data", "val_samples", "INT",
                    "images per validation pass (0: none; hdf5: the first N of data.val, -1: all)",
                    RN_FIELD(data.val_samples)),
      make<std::string>("data", "train_augment", "STRING",
                        "hdf5 training augmentation: scale (paper: shorter side in [scale_min, "
                        "scale_max], random crop) | inception (random-resized crop) | cifar (pad + "
                        "random crop) | center",
                        RN_FIELD(data.train_augment)),
      make<std::string>("data", "val_augment", "STRING",
                        "hdf5 validation: center (resize to val_resize, centre crop) | tencrop "
                        "(10-crop average)",
                        RN_FIELD(data.val_augment)),
      make<int>("data", "scale_min", "INT", "scale augmentation: smallest shorter side, pixels",
                RN_FIELD(data.scale_min)),
      make<int>("data", "scale_max", "INT", "scale augmentation: largest shorter side, pixels",
                RN_FIELD(data.scale_max)),
      make<double>("data", "area_min", "FLOAT",
                   "inception augmentation: smallest crop area, fraction of the image, in (0, 1]",
                   RN_FIELD(data.area_min)),
      make<int>("data", "cifar_pad", "INT", "cifar augmentation: black border in pixels (>= 0)",
                RN_FIELD(data.cifar_pad)),
      make<int>("data", "val_resize", "INT",
                "validation: shorter side before the crop, pixels (>= image_size; 0: "
                "image_size / 0.875)",
                RN_FIELD(data.val_resize)),
      make<bool>("data", "flip", "BOOL", "random horizontal flip in training", RN_FIELD(data.flip)),
      make<double>("data", "lighting", "FLOAT", "AlexNet PCA lighting std-dev (>= 0; 0: off; fb.resnet.torch uses 0.1)",
                   RN_FIELD(data.lighting)),
      make<std::vector<double>>("data", "mean", "LIST", "per-channel RGB mean, pixel/255 units (3 values)",
                                RN_FIELD(data.mean)),
      make<std::vector<double>>("data", "std", "LIST", "per-channel RGB std-dev, pixel/255 units (3 values > 0)",
                                RN_FIELD(data.std)),
      make<int>("data", "loader_threads", "INT",
                "decode/augment threads per rank (>= 0; 0: this rank's cores, as train.threads)",
                RN_FIELD(data.loader_threads)),
      make<int>("data", "prefetch", "INT", "batches decoded ahead (>= 1)", RN_FIELD(data.prefetch)),
      make<int64_t>("data", "max_bad_samples", "INT",
                    "corrupt images skipped (with a warning) before the run stops, per rank (>= 0)",
                    RN_FIELD(data.max_bad_samples)),
      // [optim]
      make<double>("optim", "lr", "FLOAT", "base learning rate (> 0), before linear scaling and warm-up",
                   RN_FIELD(optim.lr)),
      make<double>("optim", "momentum", "FLOAT", "SGD momentum, in [0, 1)", RN_FIELD(optim.momentum)),
      make<bool>("optim", "nesterov", "BOOL", "Nesterov momentum (needs momentum > 0)", RN_FIELD(optim.nesterov)),
      make<double>("optim", "weight_decay", "FLOAT", "L2 weight decay (>= 0)", RN_FIELD(optim.weight_decay)),
      make<bool>("optim", "no_decay_bn_bias", "BOOL", "exempt BN parameters and biases from weight decay",
                 RN_FIELD(optim.no_decay_bn_bias)),
      make<std::string>("optim", "schedule", "STRING", "lr schedule: constant | step | multistep | cosine",
                        RN_FIELD(optim.schedule)),
      make<std::vector<double>>("optim", "milestones", "LIST",
                                "multistep: epochs at which lr *= gamma, comma-separated and "
                                "strictly increasing, e.g. '30, 60' (empty: never)",
                                RN_FIELD(optim.milestones)),
      make<double>("optim", "step_epochs", "FLOAT", "step: lr *= gamma every this many epochs (> 0)",
                   RN_FIELD(optim.step_epochs)),
      make<double>("optim", "gamma", "FLOAT", "step/multistep decay factor, in (0, 1]", RN_FIELD(optim.gamma)),
      make<double>("optim", "min_lr", "FLOAT", "cosine: final learning rate (>= 0)", RN_FIELD(optim.min_lr)),
      make<double>("optim", "warmup_epochs", "FLOAT", "linear warm-up length in epochs (>= 0; 0: none)",
                   RN_FIELD(optim.warmup_epochs)),
      make<double>("optim", "warmup_start_factor", "FLOAT", "warm-up starts at this fraction of the lr, in (0, 1]",
                   RN_FIELD(optim.warmup_start_factor)),
      make<bool>("optim", "linear_scaling", "BOOL", "lr *= global batch / optim.base_batch (Goyal et al. 2017)",
                 RN_FIELD(optim.linear_scaling)),
      make<int>("optim", "base_batch", "INT", "reference global batch of linear scaling (>= 1)",
                RN_FIELD(optim.base_batch)),
      make<double>("optim", "label_smoothing", "FLOAT", "label smoothing epsilon, in [0, 1)",
                   RN_FIELD(optim.label_smoothing)),
      // [train]
      make<int>("train", "batch_size", "INT", "images per rank per forward/backward pass (>= 1)",
                RN_FIELD(train.batch_size)),
      make<int>("train", "accumulate", "INT",
                "micro-batches per optimizer step (>= 1): gradients of `accumulate` passes of batch_size images "
                "are summed before one update (global batch = batch_size x accumulate x ranks)",
                RN_FIELD(train.accumulate)),
      make<double>("train", "epochs", "FLOAT", "training length in epochs (> 0 unless train.max_steps > 0)",
                   RN_FIELD(train.epochs)),
      make<int64_t>("train", "max_steps", "INT",
                    "stop after this many steps, counted from the run's start (>= 0; 0: train.epochs "
                    "decides; the lr schedule still spans train.epochs)",
                    RN_FIELD(train.max_steps)),
      make<int>("train", "log_every", "INT", "log every this many steps (>= 1)", RN_FIELD(train.log_every)),
      make<int>("train", "eval_every_epochs", "INT", "validate every this many epochs (>= 1)",
                RN_FIELD(train.eval_every_epochs)),
      make<uint64_t>("train", "seed", "INT", "seed of initialisation, data order and synthetic data",
                     RN_FIELD(train.seed)),
      make<int>("train", "threads", "INT",
                "OpenMP threads per rank (>= 0; 0: this rank's cores: its CPU affinity when bound, "
                "else the node's cores divided among its ranks)",
                RN_FIELD(train.threads)),
      make<std::string>("train", "output_dir", "PATH", "directory for logs, the effective config and checkpoints",
                        RN_FIELD(train.output_dir)),
      make<int>("train", "trace_steps", "INT",
                "record the first N steps' forward/backward/all-reduce timeline into "
                "<output_dir>/trace.json (Chrome trace format, rank 0); >= 0, 0: off",
                RN_FIELD(train.trace_steps)),
      make<std::string>("train", "device", "cpu|cuda",
                        "where each rank computes: cpu (oneDNN) | cuda (one "
                        "GPU per rank, by its position "
                        "on the node; CUDA_VISIBLE_DEVICES applies)",
                        RN_FIELD(train.device)),
      make<std::string>("train", "precision", "STRING",
                        "activation dtype: auto (cuda: bf16 on compute capability >= 8.0, "
                        "else fp16; cpu: "
                        "fp32) | fp32 | bf16 | fp16 (weights, gradients and BN stay fp32)",
                        RN_FIELD(train.precision)),
      // [comm]
      make<std::string>("comm", "allreduce", "STRING",
                        "gradient all-reduce: ring (own ring all-reduce over "
                        "MPI point-to-point) | "
                        "mpi (MPI_Allreduce, for comparison) | nccl "
                        "(train.device = cuda only, for comparison)",
                        RN_FIELD(comm.allreduce)),
      make<double>("comm", "bucket_mb", "FLOAT", "gradient bucket size in MiB (> 0)", RN_FIELD(comm.bucket_mb)),
      make<std::string>("comm", "dtype", "STRING",
                        "gradient dtype on the wire: fp32 | bf16 | fp16 (reduced with fp32 "
                        "accumulation)",
                        RN_FIELD(comm.dtype)),
      make<int>("comm", "segment_kb", "INT", "ring pipelining segment size in KiB (>= 1)", RN_FIELD(comm.segment_kb)),
      make<double>("comm", "timeout", "FLOAT",
                   "seconds a collective may take before the job is aborted naming the missing "
                   "rank (> 0)",
                   RN_FIELD(comm.timeout)),
      make<int64_t>("comm", "check_weights_every", "INT",
                    "every this many steps all ranks compare a hash of their weights (>= 0; 0: off)",
                    RN_FIELD(comm.check_weights_every)),
      make<bool>("comm", "overlap", "BOOL",
                 "start each bucket's all-reduce while backward continues (false: all-reduce after "
                 "backward; for comparison)",
                 RN_FIELD(comm.overlap)),
      // [checkpoint]
      make<std::string>("checkpoint", "resume", "auto|PATH",
                        "continue a run: auto (newest complete checkpoint in train.output_dir, "
                        "or start fresh) | a checkpoint path | empty (start fresh)",
                        RN_FIELD(checkpoint.resume)),
      make<std::string>("checkpoint", "init_from", "PATH",
                        "start a new run from a checkpoint's weights (no optimizer state; a "
                        "different model.num_classes keeps a fresh classifier)",
                        RN_FIELD(checkpoint.init_from)),
      make<int>("checkpoint", "keep", "INT", "complete checkpoints kept in train.output_dir (>= 1)",
                RN_FIELD(checkpoint.keep)),
      make<int64_t>("checkpoint", "every_steps", "INT", "save every this many steps (>= 0; 0: off)",
                    RN_FIELD(checkpoint.every_steps)),
      make<double>("checkpoint", "every_minutes", "FLOAT",
                   "save when this many minutes passed since the last save (>= 0; 0: off)",
                   RN_FIELD(checkpoint.every_minutes)),
      // [gpu]
      make<std::string>("gpu", "conv_algo", "STRING",
                        "cuDNN convolution algorithms, chosen once per shape: "
                        "heuristic | find (timed)",
                        RN_FIELD(gpu.conv_algo)),
      make<int64_t>("gpu", "workspace_mb", "INT", "largest convolution workspace in MiB (>= 0)",
                    RN_FIELD(gpu.workspace_mb)),
      make<bool>("gpu", "deterministic", "BOOL",
                 "only deterministic cuDNN convolution algorithms (runs repeat bit for bit; may be slower)",
                 RN_FIELD(gpu.deterministic)),
      make<double>("gpu", "loss_scale", "FLOAT", "fp16: initial loss scale (> 0, a power of two)",
                   RN_FIELD(gpu.loss_scale)),
      make<int>("gpu", "loss_scale_window", "INT", "fp16: clean steps before the loss scale doubles (>= 1)",
                RN_FIELD(gpu.loss_scale_window)),
  };
  return table;
}

#undef RN_FIELD

const std::vector<std::string>& sections() {
  static const std::vector<std::string> s = {"model", "data", "optim", "train", "comm", "checkpoint", "gpu"};
  return s;
}

// "[model], [data], [optim], [train] <conj> [comm]", for messages.
std::string section_names(const char* conj) {
  std::string out;
  const auto& s = sections();
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += i + 1 == s.size() ? fmt::format(" {} ", conj) : ", ";
    out += "[" + s[i] + "]";
  }
  return out;
}

// Command-line aliases: `--alias=V` / `--alias V` mean `--key=V`. Rewritten
// to the key before parsing, so everything after (duplicates, messages,
// given_keys) sees the key.
struct CliAlias {
  const char* alias;
  const char* key;
  const char* metavar;
};
const std::vector<CliAlias>& cli_aliases() {
  static const std::vector<CliAlias> a = {
      {"allreduce", "comm.allreduce", "X"},
      {"comm-timeout", "comm.timeout", "S"},
      {"max-bad-samples", "data.max_bad_samples", "N"},
      {"resume", "checkpoint.resume", "auto|PATH"},
      {"init-from", "checkpoint.init_from", "PATH"},
      {"device", "train.device", "cpu|cuda"},
      {"precision", "train.precision", "P"},
  };
  return a;
}

// `--alias[=value]` -> `--key[=value]`; other arguments unchanged.
std::string expand_alias(const std::string& arg) {
  if (arg.rfind("--", 0) != 0) return arg;
  const auto eq = arg.find('=');
  const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
  for (const auto& a : cli_aliases())
    if (name == a.alias) return "--" + std::string(a.key) + (eq == std::string::npos ? "" : arg.substr(eq));
  return arg;
}

struct CliFlag {
  const char* name;
  const char* usage;
  const char* help;
};
const std::vector<CliFlag>& cli_flags() {
  static const std::vector<CliFlag> f = {
      {"config", "--config FILE", "INI config file (e.g. configs/resnet50.cfg); omitted: built-in defaults"},
      {"summary", "--summary", "print the architecture table of the configured model and exit"},
      {"eval-only", "--eval-only", "evaluate the checkpoint of --resume on data.val and exit"},
      {"help", "-h [ --help ]", "print this help and exit"},
      {"version", "--version", "print the version and exit"},
  };
  return f;
}

// ---------------------------------------------------------------------------
// Suggestions: optimal string alignment distance (Levenshtein + transposition).

size_t edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

// The candidate closest to `name`, or "" when none is plausibly meant. A name
// without a section also matches a candidate's key part ("lr" -> "optim.lr"),
// and a known key under the wrong section is always found.
std::string closest(const std::string& name_in, const std::vector<std::string>& candidates) {
  const std::string name = lower(name_in);
  const auto dot = name.find('.');
  const std::string name_key = dot == std::string::npos ? name : name.substr(dot + 1);
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    const auto cdot = c.find('.');
    const std::string ckey = cdot == std::string::npos ? c : c.substr(cdot + 1);
    size_t d = edit_distance(name, c);
    if (cdot != std::string::npos) {
      // Same key, other (or no) section: a strong hint.
      if (name_key == ckey)
        d = std::min<size_t>(d, 1);
      else if (dot == std::string::npos)
        d = std::min(d, edit_distance(name, ckey) + 1);
    }
    if (d < best_d) best_d = d, best = c;
  }
  const size_t limit = std::max<size_t>(2, name.size() / 3);
  return best_d <= limit ? best : "";
}

std::vector<std::string> all_keys() {
  std::vector<std::string> k;
  for (const auto& o : options()) k.push_back(o.full());
  return k;
}

[[noreturn]] void unknown_key(const std::string& name, const std::string& where, bool cli) {
  std::vector<std::string> cands = all_keys();
  if (cli) {
    for (const auto& f : cli_flags()) cands.push_back(f.name);
    for (const auto& a : cli_aliases()) cands.push_back(a.alias);
  }
  const std::string best = closest(name, cands);
  const std::string shown = cli ? (name.rfind('-', 0) == 0 ? name : "--" + name) : name;
  std::string msg;
  if (cli) {
    msg = fmt::format("unknown option '{}' on the {}", shown, where);
  } else {
    msg = fmt::format("unknown key '{}' in {}", shown, where);
  }
  if (!best.empty()) {
    msg += fmt::format("; did you mean '{}{}'?", cli ? "--" : "", best);
  } else {
    msg += ".";
  }
  if (cli)
    msg += fmt::format(
        " Options are --config FILE, --summary, --help, --version and --section.key=VALUE for "
        "the keys of {}; ",
        section_names("and"));
  else
    msg += fmt::format(" Keys are written 'key = value' under {}; ", section_names("or"));
  msg += kSeeHelp + std::string(".");
  fail(msg);
}

void check_no_unknowns(const po::parsed_options& parsed, const std::string& where, bool cli) {
  for (const auto& o : parsed.options) {
    if (o.position_key >= 0 || (cli && o.string_key.empty())) {
      const std::string tok = o.original_tokens.empty() ? "" : o.original_tokens.front();
      fail(
          fmt::format("unexpected argument '{}' on the command line; {} takes no positional "
                      "arguments. Give a config file with --config FILE and override keys with "
                      "--section.key=VALUE (e.g. --optim.lr=0.1); {}.",
                      tok, kProgram, kSeeHelp));
    }
    if (o.unregistered) unknown_key(o.string_key, where, cli);
  }
}

std::string describe_po_error(const po::error& e) { return e.what(); }

void add_config_options(po::options_description& d) {
  for (const auto& o : options()) {
    if (o.is_bool())
      d.add_options()(o.full().c_str(), po::value<std::string>()->implicit_value("true"), o.help.c_str());
    else
      d.add_options()(o.full().c_str(), po::value<std::string>(), o.help.c_str());
  }
}

void add_cli_options(po::options_description& d) {
  d.add_options()("config", po::value<std::string>(), "config file")("summary", po::bool_switch(), "summary")(
      "eval-only", po::bool_switch(), "eval-only")("help,h", po::bool_switch(), "help")("version", po::bool_switch(),
                                                                                        "version");
}

std::string quote_list(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

void check_one_of(const char* key, const std::string& v, const std::vector<std::string>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return;
  const std::string best = closest(v, allowed);
  fail(fmt::format("{} = '{}' is not allowed; allowed: {}{}.", key, v, quote_list(allowed),
                   best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best)));
}

void check_ini_string(const char* key, const std::string& v) {
  if (v.find('#') != std::string::npos || v.find('\n') != std::string::npos || v.find('\r') != std::string::npos ||
      trim(v) != v) {
    fail(
        fmt::format("{} = '{}' cannot be written to the run's INI record; allowed: text without "
                    "'#', line breaks, or leading/trailing spaces.",
                    key, v));
  }
}

}  // namespace

// ---------------------------------------------------------------------------

std::vector<std::string> config_keys() { return all_keys(); }

std::string help_text() {
  const Config def;
  std::string s;
  s += fmt::format("{} {}: trains ResNets (He et al. 2016) on one or many ranks.\n\n", kProgram, RN_VERSION);
  s += "Usage:\n";
  s += "  resnet-train [--config FILE] [--section.key=VALUE ...]            train\n";
  s += "  resnet-train [--config FILE] [--section.key=VALUE ...] --summary  print the model and "
       "exit\n";
  s += "  resnet-train --help | --version\n\n";
  s += "Values come from the command line, else the config file, else the built-in defaults\n"
       "below (a small synthetic demo). In the file write 'key = value' under [model], [data],\n"
       "[optim], [train] or [comm]; on the command line --section.key=VALUE. Booleans:\n"
       "true/false, 1/0, yes/no. Lists: comma-separated numbers. '#' starts a comment in the\n"
       "file. Epochs may be fractional; batch sizes are images per rank.\n\n";
  s += "General options:\n";
  for (const auto& f : cli_flags()) s += fmt::format("  {:<40} {}\n", f.usage, f.help);
  s += "\nAliases (command line only):\n";
  for (const auto& a : cli_aliases())
    s += fmt::format("  {:<40} same as --{}={}\n", fmt::format("--{}={}", a.alias, a.metavar), a.key, a.metavar);
  for (const auto& sec : sections()) {
    s += fmt::format("\n[{}] options:\n", sec);
    for (const auto& o : options()) {
      if (o.section != sec) continue;
      std::string dv = o.get(def);
      if (dv.empty()) dv = "(empty)";
      s += fmt::format("  {:<40} default: {}\n", fmt::format("--{}={}", o.full(), o.metavar), dv);
      s += fmt::format("      {}\n", o.help);
    }
  }
  return s;
}

namespace {

// program_options rejects `--key=` (an empty value after '='), but an empty
// value is meaningful (`--optim.milestones=` clears the list), so such tokens
// are given this stand-in value before parsing and mapped back afterwards.
constexpr const char* kEmptyValue = "\x01rn-empty\x01";

std::string unwrap(const std::string& v) { return v == kEmptyValue ? std::string() : v; }

}  // namespace

CliRequest parse_command_line(int argc, const char* const* argv, const std::string& base_ini,
                              const std::string& base_origin) {
  CliRequest req;

  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = expand_alias(argv[i]);
    if (a.size() > 3 && a.rfind("--", 0) == 0 && a.back() == '=' && a.find('=') == a.size() - 1) a += kEmptyValue;
    args.push_back(std::move(a));
  }

  po::options_description config_desc;
  add_config_options(config_desc);
  po::options_description all_desc;
  add_cli_options(all_desc);
  all_desc.add(config_desc);

  // 1. Command line. Prefix guessing is off so that a misspelled key is
  // reported rather than silently matched to some other key.
  po::parsed_options cli_parsed(&all_desc);
  try {
    const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    cli_parsed = po::command_line_parser(args).options(all_desc).style(style).allow_unregistered().run();
  } catch (const po::invalid_command_line_syntax& e) {
    if (e.kind() == po::invalid_command_line_syntax::missing_parameter) {
      const std::string opt = e.get_option_name();
      fail(fmt::format("option '{}' on the command line has no value; write {}=VALUE ({}).", opt, opt, kSeeHelp));
    }
    fail(fmt::format("bad command line: {}; {}.", describe_po_error(e), kSeeHelp));
  } catch (const po::error& e) {
    fail(fmt::format("bad command line: {}; {}.", describe_po_error(e), kSeeHelp));
  }

  // --help and --version answer at once, whatever else is on the line.
  for (const auto& o : cli_parsed.options) {
    if (o.string_key == "help") {
      req.action = CliAction::kHelp;
      req.help_text = help_text();
      return req;
    }
  }
  for (const auto& o : cli_parsed.options) {
    if (o.string_key == "version") {
      req.action = CliAction::kVersion;
      req.help_text = fmt::format("{} {}", kProgram, RN_VERSION);
      return req;
    }
  }

  check_no_unknowns(cli_parsed, "command line", /*cli=*/true);
  std::set<std::string> from_cli;
  for (const auto& o : cli_parsed.options) {
    from_cli.insert(o.string_key);
    // `--optim.lr --summary`: program_options takes the next option as the value.
    if (o.original_tokens.size() == 2 && !o.value.empty() && o.value[0].rfind("--", 0) == 0) {
      fail(
          fmt::format("option '--{}' on the command line has no value (the next argument '{}' "
                      "is an option); write --{}=VALUE ({}).",
                      o.string_key, o.value[0], o.string_key, kSeeHelp));
    }
  }

  po::variables_map vm;
  try {
    po::store(cli_parsed, vm);
  } catch (const po::multiple_occurrences& e) {
    fail(
        fmt::format("option '{}' is given more than once on the command line; give each key "
                    "once.",
                    e.get_option_name()));
  } catch (const po::error& e) {
    fail(fmt::format("bad command line: {}; {}.", describe_po_error(e), kSeeHelp));
  }

  // 2. Config file: stored after the command line, so command-line values win
  // (program_options keeps the first stored value of each key).
  std::string file_where;
  // Stores an INI source after the command line (whose values win).
  auto store_ini = [&](std::istream& in) {
    po::parsed_options file_parsed(&config_desc);
    try {
      file_parsed = po::parse_config_file(in, config_desc, /*allow_unregistered=*/true);
    } catch (const po::error& e) {
      fail(fmt::format("{} is not valid INI: {}; expected 'key = value' lines under {} sections.", file_where,
                       describe_po_error(e), section_names("or")));
    }
    if (in.bad()) fail(fmt::format("cannot read {}: read error.", file_where));
    check_no_unknowns(file_parsed, file_where, /*cli=*/false);
    try {
      po::store(file_parsed, vm);
    } catch (const po::multiple_occurrences& e) {
      std::string name = e.get_option_name();
      if (name.rfind("--", 0) == 0) name.erase(0, 2);
      fail(fmt::format("key '{}' is set more than once in {}; set each key once.", name, file_where));
    } catch (const po::error& e) {
      fail(fmt::format("{}: {}.", file_where, describe_po_error(e)));
    }
  };
  if (vm.count("config")) {
    const std::string path = unwrap(vm["config"].as<std::string>());
    req.config.config_file = path;
    file_where = fmt::format("config file '{}'", path);
    std::error_code ec;
    if (path.empty()) fail("--config was given an empty path; allowed: the path of an INI file.");
    if (std::filesystem::is_directory(path, ec)) {
      fail(
          fmt::format("cannot read config file '{}': it is a directory; --config needs an INI "
                      "file such as configs/resnet50.cfg.",
                      path));
    }
    std::ifstream in(path);
    if (!in) {
      const int err = errno;
      fail(
          fmt::format("cannot read config file '{}': {}; --config needs a readable INI file "
                      "such as configs/resnet50.cfg.",
                      path, err ? std::strerror(err) : "open failed"));
    }
    store_ini(in);
  } else if (!base_ini.empty()) {
    file_where = base_origin;
    std::istringstream in(base_ini);
    store_ini(in);
  }
  po::notify(vm);

  // 3. Apply, converting types with messages that name the key and origin.
  for (const auto& o : options()) {
    const std::string full = o.full();
    if (!vm.count(full)) continue;
    const std::string where = from_cli.count(full) ? "command line" : file_where;
    o.set(req.config, full, unwrap(vm[full].as<std::string>()), where);
    req.given_keys.insert(full);
  }

  if (vm.count("summary") && vm["summary"].as<bool>()) req.action = CliAction::kSummary;
  if (vm.count("eval-only") && vm["eval-only"].as<bool>()) {
    if (req.config.checkpoint.resume.empty() || req.config.checkpoint.resume == "auto")
      fail("--eval-only needs the checkpoint to evaluate: add --resume PATH (e.g. runs/x/checkpoint.h5).");
    req.action = CliAction::kEval;
  }
  validate(req.config);
  return req;
}

void validate(const Config& c) {
  // [model]
  ArchSpec spec;
  if (!lookup_arch(c.model.arch, &spec)) {
    const std::string best = closest(c.model.arch, known_arch_names());
    fail(fmt::format(
        "model.arch = '{}' is not a known architecture; allowed: {}, or any "
        "cifar-resnetN / cifar-plainN with N = 6n+2 >= 8 (8, 14, 20, 26, ...){}",
        c.model.arch, quote_list(known_arch_names()), best.empty() ? "." : fmt::format("; did you mean '{}'?", best)));
  }
  if (c.model.num_classes < 2)
    fail(fmt::format("model.num_classes = {} is out of range; must be >= 2.", c.model.num_classes));
  check_one_of("model.shortcut", c.model.shortcut, {"auto", "A", "B", "none"});
  if (spec.shortcut == ShortcutType::kNone && (c.model.shortcut == "A" || c.model.shortcut == "B")) {
    fail(
        fmt::format("model.shortcut = '{}' contradicts model.arch = '{}', a plain network; "
                    "allowed for plain archs: auto, none (use the resnet arch of the same "
                    "depth for shortcuts).",
                    c.model.shortcut, c.model.arch));
  }

  // [data]
  check_one_of("data.source", c.data.source, {"synthetic", "hdf5"});
  if (c.data.source == "hdf5" && c.data.train.empty()) {
    fail(
        "data.train is empty but data.source = hdf5 needs it; allowed: the directory of the "
        "training shards written by resnet-data (or set data.source = synthetic).");
  }
  check_ini_string("data.train", c.data.train);
  check_ini_string("data.val", c.data.val);
  const int min_size = spec.imagenet_stem ? 32 : 8;
  if (c.data.image_size < min_size) {
    fail(
        fmt::format("data.image_size = {} is out of range for model.arch = '{}'; must be >= {} "
                    "(>= 8 for cifar-* archs, >= 32 for the ImageNet archs).",
                    c.data.image_size, c.model.arch, min_size));
  }
  if (c.data.synthetic_samples < 1)
    fail(fmt::format("data.synthetic_samples = {} is out of range; must be >= 1.", c.data.synthetic_samples));
  if (c.data.synthetic_noise < 0)
    fail(
        fmt::format("data.synthetic_noise = {} is out of range; must be >= 0.", format_double(c.data.synthetic_noise)));
  if (c.data.val_samples < (c.data.source == "hdf5" ? -1 : 0))
    fail(fmt::format("data.val_samples = {} is out of range; must be >= 0 (0: no validation){}.", c.data.val_samples,
                     c.data.source == "hdf5" ? ", or -1 for all of data.val" : ""));
  check_one_of("data.train_augment", c.data.train_augment, {"scale", "inception", "cifar", "center"});
  check_one_of("data.val_augment", c.data.val_augment, {"center", "tencrop"});
  if (c.data.scale_min < 1 || c.data.scale_max < c.data.scale_min)
    fail(fmt::format("data.scale_min = {}, data.scale_max = {}: need 1 <= scale_min <= scale_max.", c.data.scale_min,
                     c.data.scale_max));
  if (c.data.source == "hdf5" && c.data.train_augment == "scale" && c.data.scale_min < c.data.image_size)
    fail(
        fmt::format("data.scale_min = {} is smaller than data.image_size = {}: the scale augmentation crops "
                    "image_size from an image whose shorter side is at least scale_min; raise data.scale_min or "
                    "use data.train_augment = inception.",
                    c.data.scale_min, c.data.image_size));
  if (!(c.data.area_min > 0 && c.data.area_min <= 1))
    fail(fmt::format("data.area_min = {} is out of range; must be in (0, 1].", format_double(c.data.area_min)));
  if (c.data.cifar_pad < 0) fail(fmt::format("data.cifar_pad = {} is out of range; must be >= 0.", c.data.cifar_pad));
  if (c.data.val_resize != 0 && c.data.val_resize < c.data.image_size)
    fail(
        fmt::format("data.val_resize = {} is smaller than data.image_size = {}; must be >= image_size (or 0: "
                    "image_size / 0.875).",
                    c.data.val_resize, c.data.image_size));
  if (!(c.data.lighting >= 0))
    fail(fmt::format("data.lighting = {} is out of range; must be >= 0 (0: off).", format_double(c.data.lighting)));
  if (c.data.mean.size() != 3 || c.data.std.size() != 3 ||
      std::any_of(c.data.std.begin(), c.data.std.end(), [](double x) { return !(x > 0); }))
    fail(fmt::format("data.mean = '{}', data.std = '{}': need 3 values each (R, G, B in pixel/255 units), std > 0.",
                     format_list(c.data.mean), format_list(c.data.std)));
  if (c.data.loader_threads < 0)
    fail(fmt::format("data.loader_threads = {} is out of range; must be >= 0 (0: automatic).", c.data.loader_threads));
  if (c.data.prefetch < 1) fail(fmt::format("data.prefetch = {} is out of range; must be >= 1.", c.data.prefetch));
  if (c.data.max_bad_samples < 0)
    fail(fmt::format("data.max_bad_samples = {} is out of range; must be >= 0.", c.data.max_bad_samples));

  // [optim]
  const auto& o = c.optim;
  if (!(o.lr > 0)) fail(fmt::format("optim.lr = {} is out of range; must be > 0.", format_double(o.lr)));
  if (!(o.momentum >= 0 && o.momentum < 1))
    fail(fmt::format("optim.momentum = {} is out of range; must be in [0, 1).", format_double(o.momentum)));
  if (o.nesterov && o.momentum == 0)
    fail(
        "optim.nesterov = true needs momentum, but optim.momentum = 0; allowed: "
        "optim.momentum in (0, 1) with nesterov, or optim.nesterov = false.");
  if (!(o.weight_decay >= 0))
    fail(fmt::format("optim.weight_decay = {} is out of range; must be >= 0.", format_double(o.weight_decay)));
  check_one_of("optim.schedule", o.schedule, {"constant", "step", "multistep", "cosine"});
  for (size_t i = 0; i < o.milestones.size(); ++i) {
    if (o.milestones[i] < 0 || (i > 0 && !(o.milestones[i] > o.milestones[i - 1]))) {
      fail(
          fmt::format("optim.milestones = '{}' is not allowed; must be epochs >= 0 in strictly "
                      "increasing order, e.g. '30, 60, 80'.",
                      format_list(o.milestones)));
    }
  }
  if (!(o.step_epochs > 0))
    fail(fmt::format("optim.step_epochs = {} is out of range; must be > 0.", format_double(o.step_epochs)));
  if (!(o.gamma > 0 && o.gamma <= 1))
    fail(fmt::format("optim.gamma = {} is out of range; must be in (0, 1].", format_double(o.gamma)));
  if (!(o.min_lr >= 0)) fail(fmt::format("optim.min_lr = {} is out of range; must be >= 0.", format_double(o.min_lr)));
  if (!(o.warmup_epochs >= 0))
    fail(fmt::format("optim.warmup_epochs = {} is out of range; must be >= 0 (0: no warm-up).",
                     format_double(o.warmup_epochs)));
  if (!(o.warmup_start_factor > 0 && o.warmup_start_factor <= 1))
    fail(fmt::format("optim.warmup_start_factor = {} is out of range; must be in (0, 1].",
                     format_double(o.warmup_start_factor)));
  if (o.base_batch < 1) fail(fmt::format("optim.base_batch = {} is out of range; must be >= 1.", o.base_batch));
  if (!(o.label_smoothing >= 0 && o.label_smoothing < 1))
    fail(fmt::format("optim.label_smoothing = {} is out of range; must be in [0, 1).",
                     format_double(o.label_smoothing)));

  // [train]
  const auto& t = c.train;
  if (t.batch_size < 1)
    fail(fmt::format("train.batch_size = {} is out of range; must be >= 1 (images per rank).", t.batch_size));
  if (t.accumulate < 1)
    fail(
        fmt::format("train.accumulate = {} is out of range; must be >= 1 (micro-batches per step; 1: no "
                    "gradient accumulation).",
                    t.accumulate));
  if (t.max_steps < 0)
    fail(
        fmt::format("train.max_steps = {} is out of range; must be >= 0 (0: train.epochs "
                    "decides).",
                    t.max_steps));
  if (!(t.epochs >= 0) || (t.epochs == 0 && t.max_steps == 0))
    fail(
        fmt::format("train.epochs = {} is out of range; must be > 0 (or 0 with "
                    "train.max_steps > 0).",
                    format_double(t.epochs)));
  if (t.log_every < 1) fail(fmt::format("train.log_every = {} is out of range; must be >= 1 (steps).", t.log_every));
  if (t.eval_every_epochs < 1)
    fail(fmt::format("train.eval_every_epochs = {} is out of range; must be >= 1.", t.eval_every_epochs));
  if (t.threads < 0)
    fail(
        fmt::format("train.threads = {} is out of range; must be >= 0 (0: the node's cores "
                    "divided among its ranks).",
                    t.threads));
  if (t.output_dir.empty()) fail("train.output_dir is empty; allowed: a directory path such as runs/demo.");
  check_ini_string("train.output_dir", t.output_dir);
  if (t.trace_steps < 0)
    fail(fmt::format("train.trace_steps = {} is out of range; must be >= 0 (0: no trace).", t.trace_steps));
  check_one_of("train.device", t.device, {"cpu", "cuda"});
  check_one_of("train.precision", t.precision, {"auto", "fp32", "bf16", "fp16"});
  if (t.device == "cpu" && t.precision != "auto" && t.precision != "fp32")
    fail(
        fmt::format("train.precision = {} needs train.device = cuda; the CPU "
                    "backend computes in fp32 (use auto "
                    "or fp32).",
                    t.precision));

  // [comm]
  const auto& m = c.comm;
  check_one_of("comm.allreduce", m.allreduce, {"ring", "mpi", "nccl"});
  if (m.allreduce == "nccl" && t.device != "cuda")
    fail(
        "comm.allreduce = nccl needs train.device = cuda (NCCL reduces GPU "
        "buffers); use ring or mpi on the CPU.");
  if (!(m.bucket_mb > 0))
    fail(fmt::format("comm.bucket_mb = {} is out of range; must be > 0 (MiB).", format_double(m.bucket_mb)));
  check_one_of("comm.dtype", m.dtype, {"fp32", "bf16", "fp16"});
  if (m.dtype != "fp32" && t.device == "cuda")
    fail(
        fmt::format("comm.dtype = {} is for train.device = cpu; on GPUs "
                    "gradients travel in fp32 (set comm.dtype = "
                    "fp32).",
                    m.dtype));
  if (m.segment_kb < 1) fail(fmt::format("comm.segment_kb = {} is out of range; must be >= 1 (KiB).", m.segment_kb));
  if (!(m.timeout > 0))
    fail(fmt::format("comm.timeout = {} is out of range; must be > 0 (seconds).", format_double(m.timeout)));
  if (m.check_weights_every < 0)
    fail(
        fmt::format("comm.check_weights_every = {} is out of range; must be >= 0 (steps; 0: "
                    "off).",
                    m.check_weights_every));

  // [checkpoint]
  const CheckpointConfig& k = c.checkpoint;
  check_ini_string("checkpoint.resume", k.resume);
  check_ini_string("checkpoint.init_from", k.init_from);
  if (k.keep < 1) fail(fmt::format("checkpoint.keep = {} is out of range; must be >= 1.", k.keep));
  if (k.every_steps < 0)
    fail(fmt::format("checkpoint.every_steps = {} is out of range; must be >= 0 (0: off).", k.every_steps));
  if (!(k.every_minutes >= 0))
    fail(fmt::format("checkpoint.every_minutes = {} is out of range; must be >= 0 (0: off).",
                     format_double(k.every_minutes)));

  // [gpu]
  const GpuConfig& g = c.gpu;
  check_one_of("gpu.conv_algo", g.conv_algo, {"heuristic", "find"});
  if (g.workspace_mb < 0)
    fail(fmt::format("gpu.workspace_mb = {} is out of range; must be >= 0 (MiB).", g.workspace_mb));
  if (!(g.loss_scale > 0) || std::exp2(std::round(std::log2(g.loss_scale))) != g.loss_scale)
    fail(
        fmt::format("gpu.loss_scale = {} is out of range; must be a power of "
                    "two > 0 (e.g. 65536).",
                    format_double(g.loss_scale)));
  if (g.loss_scale_window < 1)
    fail(fmt::format("gpu.loss_scale_window = {} is out of range; must be >= 1 (steps).", g.loss_scale_window));
}

std::string to_ini(const Config& c) {
  std::string s;
  s += fmt::format("# Effective configuration of {} {}.\n", kProgram, RN_VERSION);
  if (c.config_file.empty())
    s += "# Built from the defaults and command-line overrides (no --config).\n";
  else
    s += fmt::format("# Built from --config {} and command-line overrides.\n", c.config_file);
  s += "# Repeat the run with: resnet-train --config <this file>\n";
  for (const auto& sec : sections()) {
    s += fmt::format("\n[{}]\n", sec);
    for (const auto& o : options())
      if (o.section == sec) {
        const std::string v = o.get(c);
        s += v.empty() ? fmt::format("{} =\n", o.key) : fmt::format("{} = {}\n", o.key, v);
      }
  }
  return s;
}

}  // namespace rn
