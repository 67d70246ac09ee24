// Tests of the resnet-train configuration: command line + INI file parsing,
// precedence, validation messages, to_ini round trip and the shipped
// configs/*.cfg recipes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "trainer/config/config.h"
#include "trainer/optim/lr_schedule.h"
#include "trainer/core/error.h"

#ifndef RN_SOURCE_DIR
#error "RN_SOURCE_DIR must name the source tree (the test target defines it)"
#endif

namespace rn {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += (s.empty() ? "" : " ") + a;
  return s;
}

CliRequest Parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"resnet-train"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

// The UserError message of parsing `args`; records a failure when parsing
// succeeds or throws anything else.
std::string ErrorOf(const std::vector<std::string>& args) {
  try {
    Parse(args);
  } catch (const UserError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected rn::UserError for '" << Join(args) << "', got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected rn::UserError for '" << Join(args) << "', but it parsed";
  return "";
}

std::string ValidateError(const Config& c) {
  try {
    validate(c);
  } catch (const UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << "validate() accepted an invalid config";
  return "";
}

// A file under the temp directory, removed on destruction.
class TempFile {
 public:
  explicit TempFile(const std::string& content, const std::string& suffix = ".cfg") {
    static std::atomic<int> counter{0};
    path_ = (fs::temp_directory_path() /
             ("rn_test_config_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + suffix))
                .string();
    std::ofstream out(path_);
    out << content;
  }
  ~TempFile() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, ec);
    fs::remove(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<fs::path> ShippedConfigs() {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(fs::path(RN_SOURCE_DIR) / "configs"))
    if (e.path().extension() == ".cfg") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

// ---------------------------------------------------------------------------
// Defaults and actions

TEST(ConfigParse, NoArgumentsGivesBuiltInDefaults) {
  const CliRequest r = Parse({});
  EXPECT_EQ(r.action, CliAction::kTrain);
  EXPECT_TRUE(r.config == Config{});
  EXPECT_EQ(r.config.model.arch, "cifar-resnet20");
  EXPECT_EQ(r.config.model.num_classes, 10);
  EXPECT_EQ(r.config.model.shortcut, "auto");
  EXPECT_EQ(r.config.data.source, "synthetic");
  EXPECT_EQ(r.config.data.image_size, 32);
  EXPECT_EQ(r.config.data.synthetic_samples, 4096);
  EXPECT_DOUBLE_EQ(r.config.optim.lr, 0.1);
  EXPECT_DOUBLE_EQ(r.config.optim.weight_decay, 1e-4);
  EXPECT_EQ(r.config.optim.schedule, "multistep");
  EXPECT_TRUE(r.config.optim.milestones.empty());
  EXPECT_EQ(r.config.train.batch_size, 64);
  EXPECT_DOUBLE_EQ(r.config.train.epochs, 4);
  EXPECT_EQ(r.config.train.output_dir, "runs/demo");
  EXPECT_EQ(r.config.train.threads, 0);
  EXPECT_EQ(r.config.train.trace_steps, 0);
  EXPECT_FALSE(r.config.model.frozen_bn);
  EXPECT_EQ(r.config.comm.allreduce, "ring");
  EXPECT_DOUBLE_EQ(r.config.comm.bucket_mb, 25);
  EXPECT_EQ(r.config.comm.dtype, "fp32");
  EXPECT_EQ(r.config.comm.segment_kb, 256);
  EXPECT_DOUBLE_EQ(r.config.comm.timeout, 300);
  EXPECT_EQ(r.config.comm.check_weights_every, 1000);
  EXPECT_TRUE(r.config.comm.overlap);
  EXPECT_EQ(r.config.config_file, "");
  EXPECT_NO_THROW(validate(Config{}));
}

TEST(ConfigParse, HelpListsEveryOptionWithDefaultAndUsage) {
  const CliRequest r = Parse({"--help"});
  EXPECT_EQ(r.action, CliAction::kHelp);
  EXPECT_THAT(r.help_text, HasSubstr("Usage:"));
  EXPECT_THAT(r.help_text, HasSubstr("--config FILE"));
  EXPECT_THAT(r.help_text, HasSubstr("--summary"));
  EXPECT_THAT(r.help_text, HasSubstr("--version"));
  for (const auto& s : {"[model]", "[data]", "[optim]", "[train]", "[comm]", "[checkpoint]", "[gpu]"})
    EXPECT_THAT(r.help_text, HasSubstr(s));
  const auto keys = config_keys();
  EXPECT_EQ(keys.size(), 5u + 21u + 15u + 12u + 7u + 5u + 5u);
  // INI/help order: sections in order, the new keys where they belong.
  const auto at = [&](const std::string& k) { return std::find(keys.begin(), keys.end(), k) - keys.begin(); };
  EXPECT_EQ(at("model.frozen_bn"), at("model.zero_init_residual") + 1);
  EXPECT_EQ(at("train.trace_steps"), at("train.output_dir") + 1);
  EXPECT_EQ(at("train.accumulate"), at("train.batch_size") + 1);
  EXPECT_EQ(at("train.device"), at("train.trace_steps") + 1);
  EXPECT_EQ(at("train.precision"), at("train.device") + 1);
  EXPECT_EQ(std::vector<std::string>(keys.end() - 17, keys.end() - 10),
            (std::vector<std::string>{"comm.allreduce", "comm.bucket_mb", "comm.dtype", "comm.segment_kb",
                                      "comm.timeout", "comm.check_weights_every", "comm.overlap"}));
  EXPECT_EQ(std::vector<std::string>(keys.end() - 10, keys.end() - 5),
            (std::vector<std::string>{"checkpoint.resume", "checkpoint.init_from", "checkpoint.keep",
                                      "checkpoint.every_steps", "checkpoint.every_minutes"}));
  EXPECT_EQ(std::vector<std::string>(keys.end() - 5, keys.end()),
            (std::vector<std::string>{"gpu.conv_algo", "gpu.workspace_mb", "gpu.deterministic", "gpu.loss_scale",
                                      "gpu.loss_scale_window"}));
  EXPECT_THAT(r.help_text, HasSubstr("--device=cpu|cuda"));
  EXPECT_THAT(r.help_text, HasSubstr("--resume=auto|PATH"));
  EXPECT_THAT(r.help_text, HasSubstr("--eval-only"));
  // The command-line aliases are listed with the key they stand for.
  EXPECT_THAT(r.help_text, HasSubstr("--allreduce=X"));
  EXPECT_THAT(r.help_text, HasSubstr("same as --comm.allreduce=X"));
  EXPECT_THAT(r.help_text, HasSubstr("--comm-timeout=S"));
  EXPECT_THAT(r.help_text, HasSubstr("same as --comm.timeout=S"));
  for (const auto& k : keys) EXPECT_THAT(r.help_text, HasSubstr("--" + k + "=")) << k;
  // Every key's line shows its default: compare with the INI of the defaults.
  const std::string ini = to_ini(Config{});
  std::istringstream lines(r.help_text);
  std::string line;
  int with_default = 0;
  while (std::getline(lines, line)) {
    const auto opt = line.find("  --");
    const auto def = line.find("default: ");
    if (opt == std::string::npos || def == std::string::npos) continue;
    const std::string full = line.substr(opt + 4, line.find('=') - opt - 4);
    const std::string key = full.substr(full.find('.') + 1);
    std::string value = line.substr(def + 9);
    if (value == "(empty)") value = "";
    EXPECT_THAT(ini, HasSubstr("\n" + key + (value.empty() ? " =\n" : " = " + value + "\n"))) << line;
    ++with_default;
  }
  EXPECT_EQ(with_default, static_cast<int>(keys.size()));
  EXPECT_THAT(r.help_text, HasSubstr("default: cifar-resnet20"));
  EXPECT_EQ(Parse({"-h"}).action, CliAction::kHelp);
}

TEST(ConfigParse, HelpAndVersionDoNotReadTheConfigFile) {
  EXPECT_EQ(Parse({"--config", "/nonexistent/x.cfg", "--help"}).action, CliAction::kHelp);
  const CliRequest v = Parse({"--version", "--config=/nonexistent/x.cfg"});
  EXPECT_EQ(v.action, CliAction::kVersion);
  EXPECT_THAT(v.help_text, StartsWith("resnet-train "));
}

TEST(ConfigParse, SummaryKeepsTheConfig) {
  const CliRequest r = Parse({"--summary", "--model.arch=resnet50", "--data.image_size=224"});
  EXPECT_EQ(r.action, CliAction::kSummary);
  EXPECT_EQ(r.config.model.arch, "resnet50");
  EXPECT_EQ(r.config.data.image_size, 224);
}

// ---------------------------------------------------------------------------
// Values and precedence

TEST(ConfigParse, CommandLineOverridesOfEveryType) {
  const CliRequest r =
      Parse({"--optim.lr=0.05", "--train.batch_size", "32", "--model.zero_init_residual", "--optim.nesterov=yes",
             "--data.synthetic_samples=100000000000", "--train.seed=18446744073709551615", "--data.source=hdf5",
             "--data.train=/data/shards", "--train.epochs=0.5", "--optim.weight_decay=5e-5"});
  EXPECT_DOUBLE_EQ(r.config.optim.lr, 0.05);
  EXPECT_EQ(r.config.train.batch_size, 32);
  EXPECT_TRUE(r.config.model.zero_init_residual);
  EXPECT_TRUE(r.config.optim.nesterov);
  EXPECT_EQ(r.config.data.synthetic_samples, 100000000000LL);
  EXPECT_EQ(r.config.train.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(r.config.data.source, "hdf5");
  EXPECT_EQ(r.config.data.train, "/data/shards");
  EXPECT_DOUBLE_EQ(r.config.train.epochs, 0.5);
  EXPECT_DOUBLE_EQ(r.config.optim.weight_decay, 5e-5);
  // Untouched keys keep their defaults.
  EXPECT_DOUBLE_EQ(r.config.optim.momentum, 0.9);
  EXPECT_EQ(r.config.model.arch, "cifar-resnet20");
}

TEST(ConfigParse, BooleanSpellings) {
  const std::vector<std::pair<std::string, bool>> cases = {{"true", true}, {"1", true},      {"yes", true},
                                                           {"TRUE", true}, {"false", false}, {"0", false},
                                                           {"no", false},  {"No", false}};
  for (const auto& [text, want] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(Parse({"--optim.linear_scaling=" + text}).config.optim.linear_scaling, want);
    TempFile f("[optim]\nno_decay_bn_bias = " + text + "\n");
    EXPECT_EQ(Parse({"--config", f.path()}).config.optim.no_decay_bn_bias, want);
  }
}

TEST(ConfigParse, CommandLineBeatsFileBeatsDefault) {
  TempFile f(
      "# a comment\n"
      "[optim]\n"
      "lr = 0.2   # trailing comment\n"
      "momentum = 0.8\n"
      "[train]\n"
      "batch_size = 16\n");
  for (const auto& order : {std::vector<std::string>{"--config", f.path(), "--optim.lr=0.3"},
                            std::vector<std::string>{"--optim.lr=0.3", "--config=" + f.path()}}) {
    SCOPED_TRACE(Join(order));
    const CliRequest r = Parse(order);
    EXPECT_DOUBLE_EQ(r.config.optim.lr, 0.3);        // command line
    EXPECT_DOUBLE_EQ(r.config.optim.momentum, 0.8);  // file
    EXPECT_EQ(r.config.train.batch_size, 16);        // file
    EXPECT_DOUBLE_EQ(r.config.optim.gamma, 0.1);     // default
    EXPECT_EQ(r.config.config_file, f.path());
  }
  EXPECT_DOUBLE_EQ(Parse({"--config", f.path()}).config.optim.lr, 0.2);
}

TEST(ConfigParse, CommandLineCanRepairAnInvalidFileValue) {
  // Validation sees the merged config, so an override can fix the file.
  TempFile f("[optim]\nlr = 0\n");
  EXPECT_THAT(ErrorOf({"--config", f.path()}), HasSubstr("optim.lr"));
  EXPECT_DOUBLE_EQ(Parse({"--config", f.path(), "--optim.lr=0.01"}).config.optim.lr, 0.01);
}

TEST(ConfigParse, Milestones) {
  EXPECT_EQ(Parse({"--optim.milestones=82, 123"}).config.optim.milestones, (std::vector<double>{82, 123}));
  EXPECT_EQ(Parse({"--optim.milestones=30,60,90"}).config.optim.milestones, (std::vector<double>{30, 60, 90}));
  EXPECT_EQ(Parse({"--optim.milestones=0.5"}).config.optim.milestones, (std::vector<double>{0.5}));
  EXPECT_TRUE(Parse({"--optim.milestones="}).config.optim.milestones.empty());
  EXPECT_TRUE(Parse({"--optim.milestones=  "}).config.optim.milestones.empty());
  TempFile f("[optim]\nmilestones = 82, 123 # epochs\n");
  EXPECT_EQ(Parse({"--config", f.path()}).config.optim.milestones, (std::vector<double>{82, 123}));
  TempFile empty("[optim]\nmilestones =\n");
  EXPECT_TRUE(Parse({"--config", empty.path()}).config.optim.milestones.empty());
  // The command line replaces the file's list rather than appending to it.
  EXPECT_EQ(Parse({"--config", f.path(), "--optim.milestones=10"}).config.optim.milestones, (std::vector<double>{10}));
}

TEST(ConfigParse, MilestoneErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {{"30,,60", "comma-separated"},
                                                                  {"30,", "comma-separated"},
                                                                  {",30", "comma-separated"},
                                                                  {"a,b", "not a number"},
                                                                  {"30;60", "not a number"}};
  for (const auto& [bad, expected] : cases) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(ErrorOf({"--optim.milestones=" + bad}),
                AllOf(HasSubstr("optim.milestones"), HasSubstr(expected), HasSubstr("command line")));
  }
}

TEST(ConfigParse, CommSectionAndNewKeysFromTheFile) {
  TempFile f(
      "[model]\nfrozen_bn = yes\n"
      "[train]\ntrace_steps = 5\n"
      "[comm]\nallreduce = mpi\nbucket_mb = 0.5\ndtype = fp16\nsegment_kb = 64\ntimeout = 30\n"
      "check_weights_every = 0\noverlap = false\n");
  const CliRequest r = Parse({"--config", f.path(), "--comm.dtype=bf16"});
  EXPECT_TRUE(r.config.model.frozen_bn);
  EXPECT_EQ(r.config.train.trace_steps, 5);
  EXPECT_EQ(r.config.comm.allreduce, "mpi");
  EXPECT_DOUBLE_EQ(r.config.comm.bucket_mb, 0.5);
  EXPECT_EQ(r.config.comm.dtype, "bf16");  // command line wins
  EXPECT_EQ(r.config.comm.segment_kb, 64);
  EXPECT_DOUBLE_EQ(r.config.comm.timeout, 30);
  EXPECT_EQ(r.config.comm.check_weights_every, 0);
  EXPECT_FALSE(r.config.comm.overlap);
  EXPECT_TRUE(r.given_keys.count("comm.overlap"));
  EXPECT_FALSE(r.given_keys.count("optim.lr"));
  // A comm key under another section is found.
  TempFile wrong("[train]\noverlap = false\n");
  EXPECT_THAT(ErrorOf({"--config", wrong.path()}), HasSubstr("did you mean 'comm.overlap'?"));
  EXPECT_THAT(ErrorOf({"--train.timeout=5"}), HasSubstr("did you mean '--comm.timeout'?"));
}

// ---------------------------------------------------------------------------
// Command-line aliases

TEST(ConfigAliases, AllreduceAndCommTimeoutInBothForms) {
  for (const auto& args : {std::vector<std::string>{"--allreduce=mpi", "--comm-timeout=12.5"},
                           std::vector<std::string>{"--allreduce", "mpi", "--comm-timeout", "12.5"},
                           std::vector<std::string>{"--comm.allreduce=mpi", "--comm.timeout", "12.5"}}) {
    SCOPED_TRACE(Join(args));
    const CliRequest r = Parse(args);
    EXPECT_EQ(r.config.comm.allreduce, "mpi");
    EXPECT_DOUBLE_EQ(r.config.comm.timeout, 12.5);
    // Recorded under the key, like the long form.
    EXPECT_TRUE(r.given_keys.count("comm.allreduce"));
    EXPECT_TRUE(r.given_keys.count("comm.timeout"));
    EXPECT_FALSE(r.given_keys.count("comm.dtype"));
  }
  EXPECT_EQ(Parse({"--allreduce=ring"}).config.comm.allreduce, "ring");
  EXPECT_EQ(Parse({"--max-bad-samples=7"}).config.data.max_bad_samples, 7);
  EXPECT_EQ(Parse({"--max-bad-samples", "0"}).config.data.max_bad_samples, 0);
  EXPECT_THAT(ErrorOf({"--max-bad-samples=-1"}), HasSubstr("data.max_bad_samples"));
}

TEST(ConfigAliases, AliasBeatsTheFileAndWorksWithOtherOptions) {
  TempFile f("[comm]\nallreduce = mpi\ntimeout = 60\n");
  const CliRequest r = Parse({"--config", f.path(), "--allreduce=ring", "--summary"});
  EXPECT_EQ(r.action, CliAction::kSummary);
  EXPECT_EQ(r.config.comm.allreduce, "ring");   // alias on the command line
  EXPECT_DOUBLE_EQ(r.config.comm.timeout, 60);  // file
  EXPECT_EQ(Parse({"--comm-timeout=7", "--config", f.path()}).config.comm.timeout, 7);
}

TEST(ConfigAliases, ErrorsNameTheKey) {
  // Alias and key together are the same key twice.
  EXPECT_THAT(ErrorOf({"--allreduce=mpi", "--comm.allreduce=ring"}),
              AllOf(HasSubstr("comm.allreduce"), HasSubstr("more than once")));
  EXPECT_THAT(ErrorOf({"--comm-timeout=5", "--comm-timeout=6"}),
              AllOf(HasSubstr("comm.timeout"), HasSubstr("more than once")));
  EXPECT_THAT(ErrorOf({"--allreduce=gloo"}), AllOf(HasSubstr("comm.allreduce = 'gloo'"), HasSubstr("ring, mpi")));
  EXPECT_THAT(ErrorOf({"--comm-timeout=-1"}), AllOf(HasSubstr("comm.timeout = -1"), HasSubstr("> 0")));
  EXPECT_THAT(ErrorOf({"--comm-timeout"}), AllOf(HasSubstr("comm.timeout"), HasSubstr("no value")));
  // Misspelled aliases get a suggestion; only the exact alias is rewritten.
  EXPECT_THAT(ErrorOf({"--allreduc=ring"}), HasSubstr("did you mean '--allreduce'?"));
  EXPECT_THAT(ErrorOf({"--comm_timeout=5"}), HasSubstr("comm_timeout"));
  EXPECT_THAT(ErrorOf({"--allreduce-x=ring"}), HasSubstr("allreduce-x"));
  // Aliases are command-line only: not INI keys.
  TempFile f("allreduce = mpi\n");
  EXPECT_THAT(ErrorOf({"--config", f.path()}), HasSubstr("unknown key 'allreduce'"));
}

// ---------------------------------------------------------------------------
// to_ini

Config EveryFieldChanged() {
  Config c;
  c.model.arch = "resnet34";
  c.model.num_classes = 1000;
  c.model.shortcut = "A";
  c.model.zero_init_residual = true;
  c.data.source = "hdf5";
  c.data.train = "/data/imagenet shards/train";
  c.data.val = "/data/imagenet shards/val";
  c.data.train_augment = "inception";
  c.data.mean = {0.5, 0.25, 0.125};
  c.data.image_size = 224;
  c.data.synthetic_samples = 123456789012LL;
  c.data.synthetic_noise = 0.123456789012345;
  c.data.val_samples = 0;
  c.optim.lr = 0.1 * 3;  // 0.30000000000000004: needs every digit
  c.optim.momentum = 0.875;
  c.optim.nesterov = true;
  c.optim.weight_decay = 3.0517578125e-05;
  c.optim.no_decay_bn_bias = true;
  c.optim.schedule = "step";
  c.optim.milestones = {1.5, 30, 60.25};
  c.optim.step_epochs = 7.5;
  c.optim.gamma = 0.5;
  c.optim.min_lr = 1e-7;
  c.optim.warmup_epochs = 5;
  c.optim.warmup_start_factor = 1.0 / 3.0;
  c.optim.linear_scaling = true;
  c.optim.base_batch = 1024;
  c.optim.label_smoothing = 0.1;
  c.train.batch_size = 48;
  c.train.epochs = 0;
  c.train.max_steps = 5000;
  c.train.log_every = 3;
  c.train.eval_every_epochs = 2;
  c.train.seed = 18446744073709551615ULL;
  c.train.threads = 7;
  c.train.output_dir = "runs/x-1";
  c.train.trace_steps = 20;
  c.model.frozen_bn = true;
  c.comm.allreduce = "mpi";
  c.comm.bucket_mb = 0.1 * 3;  // every digit again
  c.comm.dtype = "bf16";
  c.comm.segment_kb = 1;
  c.comm.timeout = 12.5;
  c.comm.check_weights_every = 0;
  c.comm.overlap = false;
  c.checkpoint.resume = "runs/x-1/checkpoint-00000100.h5";
  c.checkpoint.init_from = "/models/resnet34 init.h5";
  c.checkpoint.keep = 7;
  c.checkpoint.every_steps = 250;
  c.checkpoint.every_minutes = 0.1 * 3;
  c.gpu.conv_algo = "find";
  c.gpu.workspace_mb = 77;
  c.gpu.deterministic = true;
  c.gpu.loss_scale = 1024;
  c.gpu.loss_scale_window = 50;
  return c;
}

TEST(ConfigIni, RoundTripOfEveryField) {
  const Config want = EveryFieldChanged();
  ASSERT_NO_THROW(validate(want));
  const std::string ini = to_ini(want);
  TempFile f(ini, ".ini");
  Config got = Parse({"--config", f.path()}).config;
  EXPECT_EQ(got.config_file, f.path());
  got.config_file = want.config_file;
  EXPECT_TRUE(got == want) << ini << "\nre-parsed as:\n" << to_ini(got);
  EXPECT_DOUBLE_EQ(got.optim.lr, 0.1 * 3);
  EXPECT_EQ(got.optim.lr, want.optim.lr);  // bit-exact, not merely close
  EXPECT_EQ(got.optim.milestones, want.optim.milestones);
}

TEST(ConfigIni, RoundTripOfDefaultsAndEmptyValues) {
  const std::string ini = to_ini(Config{});
  TempFile f(ini, ".ini");
  Config got = Parse({"--config", f.path()}).config;
  got.config_file.clear();
  EXPECT_TRUE(got == Config{}) << ini;
}

TEST(ConfigIni, HasEverySectionAndKeyOnce) {
  const std::string ini = to_ini(EveryFieldChanged());
  for (const auto& s : {"[model]", "[data]", "[optim]", "[train]", "[comm]", "[checkpoint]"})
    EXPECT_THAT(ini, HasSubstr(s));
  for (const auto& full : config_keys()) {
    std::string key = "\n";
    key += full.substr(full.find('.') + 1);
    key += " =";
    const auto first = ini.find(key);
    EXPECT_NE(first, std::string::npos) << full;
    EXPECT_EQ(ini.find(key, first + 1), std::string::npos) << full << " appears twice";
  }
  EXPECT_THAT(ini, HasSubstr("milestones = 1.5, 30, 60.25\n"));
  EXPECT_THAT(ini, HasSubstr("seed = 18446744073709551615\n"));
  EXPECT_THAT(ini, HasSubstr("\n[comm]\nallreduce = mpi\nbucket_mb = 0.30000000000000004\ndtype = bf16\n"
                             "segment_kb = 1\ntimeout = 12.5\ncheck_weights_every = 0\noverlap = false\n"));
  EXPECT_THAT(ini, HasSubstr("frozen_bn = true\n"));
  EXPECT_THAT(ini, HasSubstr("trace_steps = 20\n"));
}

TEST(ConfigIni, RoundTripOfTheNewKeysOneAtATime) {
  // Each new key alone away from its default survives to_ini -> parse.
  std::vector<Config> variants(9);
  variants[0].model.frozen_bn = true;
  variants[1].train.trace_steps = 3;
  variants[2].comm.allreduce = "mpi";
  variants[3].comm.bucket_mb = 1.0 / 3.0;
  variants[4].comm.dtype = "fp16";
  variants[5].comm.segment_kb = 4096;
  variants[6].comm.timeout = 0.25;
  variants[7].comm.check_weights_every = 100000000000LL;
  variants[8].comm.overlap = false;
  for (const Config& want : variants) {
    ASSERT_NO_THROW(validate(want));
    const std::string ini = to_ini(want);
    TempFile f(ini, ".ini");
    Config got = Parse({"--config", f.path()}).config;
    got.config_file.clear();
    EXPECT_TRUE(got == want) << ini;
  }
}

TEST(ConfigIni, RecordsTheSourceFileAsAComment) {
  Config c;
  c.config_file = "configs/resnet50.cfg";
  EXPECT_THAT(to_ini(c), HasSubstr("# Built from --config configs/resnet50.cfg"));
}

// ---------------------------------------------------------------------------
// Shipped recipes

TEST(ConfigFiles, EveryShippedConfigParsesValidatesAndRoundTrips) {
  const auto files = ShippedConfigs();
  ASSERT_GE(files.size(), 16u) << "expected the ImageNet, CIFAR and demo recipes in configs/";
  for (const auto& p : files) {
    SCOPED_TRACE(p.string());
    CliRequest r;
    try {
      r = Parse({"--config", p.string()});
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    EXPECT_EQ(r.action, CliAction::kTrain);
    const std::string stem = p.stem().string();
    if (stem != "demo") {  // named after the arch, or arch-VARIANT (resnet152-8x4gpu)
      EXPECT_TRUE(r.config.model.arch == stem || stem.starts_with(r.config.model.arch + "-")) << r.config.model.arch;
    }
    EXPECT_EQ(r.config.train.output_dir, "runs/" + stem);
    TempFile f(to_ini(r.config), ".ini");
    Config again = Parse({"--config", f.path()}).config;
    again.config_file = r.config.config_file;
    EXPECT_TRUE(again == r.config);
  }
}

TEST(ConfigFiles, ImageNetRecipes) {
  for (const std::string arch : {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}) {
    SCOPED_TRACE(arch);
    const Config c = Parse({"--config", std::string(RN_SOURCE_DIR) + "/configs/" + arch + ".cfg"}).config;
    EXPECT_EQ(c.model.arch, arch);
    EXPECT_EQ(c.model.num_classes, 1000);
    EXPECT_EQ(c.model.shortcut, "B");
    EXPECT_EQ(c.data.source, "hdf5");
    EXPECT_FALSE(c.data.train.empty());
    EXPECT_FALSE(c.data.val.empty());
    EXPECT_EQ(c.data.train_augment, "scale");
    EXPECT_EQ(c.data.val_samples, -1);
    EXPECT_EQ(c.data.image_size, 224);
    EXPECT_EQ(c.train.batch_size, 32);
    EXPECT_TRUE(c.optim.linear_scaling);
    EXPECT_EQ(c.optim.base_batch, 256);
    EXPECT_DOUBLE_EQ(c.optim.lr, 0.1);
    EXPECT_DOUBLE_EQ(c.optim.momentum, 0.9);
    EXPECT_DOUBLE_EQ(c.optim.weight_decay, 1e-4);
    EXPECT_EQ(c.optim.schedule, "multistep");
    EXPECT_EQ(c.optim.milestones, (std::vector<double>{30, 60}));
    EXPECT_DOUBLE_EQ(c.optim.gamma, 0.1);
    EXPECT_DOUBLE_EQ(c.train.epochs, 90);
  }
}

TEST(ConfigFiles, CifarRecipes) {
  for (const std::string arch :
       {"cifar-resnet20", "cifar-resnet32", "cifar-resnet44", "cifar-resnet56", "cifar-resnet110", "cifar-resnet1202",
        "cifar-plain20", "cifar-plain32", "cifar-plain44", "cifar-plain56"}) {
    SCOPED_TRACE(arch);
    const Config c = Parse({"--config", std::string(RN_SOURCE_DIR) + "/configs/" + arch + ".cfg"}).config;
    EXPECT_EQ(c.model.arch, arch);
    EXPECT_EQ(c.model.num_classes, 10);
    EXPECT_EQ(c.model.shortcut, arch.find("plain") != std::string::npos ? "none" : "A");
    EXPECT_EQ(c.data.source, "hdf5");
    EXPECT_FALSE(c.data.train.empty());
    EXPECT_EQ(c.data.train_augment, "cifar");
    EXPECT_EQ(c.data.val_resize, 32);
    EXPECT_EQ(c.data.image_size, 32);
    EXPECT_EQ(c.train.batch_size, 128);
    EXPECT_FALSE(c.optim.linear_scaling);
    EXPECT_DOUBLE_EQ(c.optim.lr, 0.1);
    EXPECT_DOUBLE_EQ(c.optim.momentum, 0.9);
    EXPECT_DOUBLE_EQ(c.optim.weight_decay, 1e-4);
    EXPECT_EQ(c.optim.schedule, "multistep");
    // 32k / 48k / 64k iterations at 391 steps per epoch.
    EXPECT_EQ(c.optim.milestones, (std::vector<double>{82, 123}));
    EXPECT_DOUBLE_EQ(c.train.epochs, 164);
    if (arch == "cifar-resnet110") {
      EXPECT_DOUBLE_EQ(c.optim.warmup_epochs, 1);
      EXPECT_DOUBLE_EQ(c.optim.warmup_start_factor, 0.1);
    } else {
      EXPECT_DOUBLE_EQ(c.optim.warmup_epochs, 0);
    }
  }
}

TEST(ConfigFiles, DemoRecipe) {
  const Config c = Parse({"--config", std::string(RN_SOURCE_DIR) + "/configs/demo.cfg"}).config;
  EXPECT_EQ(c.model.arch, "cifar-resnet8");
  EXPECT_EQ(c.data.source, "synthetic");
  EXPECT_EQ(c.data.image_size, 16);
  EXPECT_EQ(c.model.num_classes, 10);
  EXPECT_EQ(c.data.synthetic_samples, 2048);
  EXPECT_EQ(c.train.batch_size, 64);
  EXPECT_DOUBLE_EQ(c.train.epochs, 3);
  EXPECT_EQ(c.optim.schedule, "cosine");
  EXPECT_DOUBLE_EQ(c.optim.warmup_epochs, 0.5);
  EXPECT_EQ(c.train.output_dir, "runs/demo");
}

// The cluster recipe: 8 nodes x 4 GPUs x 32 = 1024 images per step, lr
// scaled linearly to 0.4 after a 5-epoch warm-up, checkpoints every 30 min.
TEST(ConfigFiles, ResNet152ClusterRecipe) {
  const Config c = Parse({"--config", std::string(RN_SOURCE_DIR) + "/configs/resnet152-8x4gpu.cfg"}).config;
  EXPECT_EQ(c.model.arch, "resnet152");
  EXPECT_EQ(c.train.batch_size, 32);
  EXPECT_TRUE(c.optim.linear_scaling);
  EXPECT_DOUBLE_EQ(rn::scaled_lr(c.optim.lr, 8 * 4 * c.train.batch_size, c.optim.base_batch), 0.4);
  EXPECT_DOUBLE_EQ(c.optim.warmup_epochs, 5);
  EXPECT_EQ(c.optim.milestones, (std::vector<double>{30, 60, 80}));
  EXPECT_DOUBLE_EQ(c.checkpoint.every_minutes, 30);
}

// ---------------------------------------------------------------------------
// Errors: unknown keys

TEST(ConfigErrors, UnknownCommandLineKeySuggestsTheClosest) {
  const std::string m = ErrorOf({"--optim.lrr=0.1"});
  EXPECT_THAT(m, StartsWith("config error:"));
  EXPECT_THAT(m, AllOf(HasSubstr("optim.lrr"), HasSubstr("command line"), HasSubstr("did you mean '--optim.lr'?")));
  EXPECT_THAT(ErrorOf({"--optim.momentun=0.9"}), HasSubstr("did you mean '--optim.momentum'?"));
  EXPECT_THAT(ErrorOf({"--optim.weigth_decay=0"}), HasSubstr("did you mean '--optim.weight_decay'?"));
  // A key without its section, or under the wrong one.
  EXPECT_THAT(ErrorOf({"--lr=0.1"}), HasSubstr("did you mean '--optim.lr'?"));
  EXPECT_THAT(ErrorOf({"--train.lr=0.1"}), HasSubstr("did you mean '--optim.lr'?"));
  EXPECT_THAT(ErrorOf({"--sumary"}), HasSubstr("did you mean '--summary'?"));
  // Prefixes are not silently completed.
  EXPECT_THAT(ErrorOf({"--optim.mom=0.5"}), HasSubstr("optim.mom"));
  EXPECT_THAT(ErrorOf({"--model.ar=resnet50"}), HasSubstr("did you mean '--model.arch'?"));
  // Nothing close: no suggestion, but a pointer to --help.
  const std::string far = ErrorOf({"--completely.unrelated=1"});
  EXPECT_THAT(far, AllOf(HasSubstr("completely.unrelated"), Not(HasSubstr("did you mean")), HasSubstr("--help")));
}

TEST(ConfigErrors, UnknownFileKeyNamesTheFileAndSuggests) {
  TempFile f("[optim]\nlearning_rat = 0.1\n");
  const std::string m = ErrorOf({"--config", f.path()});
  EXPECT_THAT(m, AllOf(HasSubstr("optim.learning_rat"), HasSubstr(f.path())));
  TempFile misspelled("[optim]\nmomentun = 0.9\n");
  EXPECT_THAT(ErrorOf({"--config", misspelled.path()}), AllOf(HasSubstr("optim.momentun"), HasSubstr(misspelled.path()),
                                                              HasSubstr("did you mean 'optim.momentum'?")));
  TempFile section("[optm]\nlr = 0.1\n");
  EXPECT_THAT(ErrorOf({"--config", section.path()}),
              AllOf(HasSubstr("optm.lr"), HasSubstr("did you mean 'optim.lr'?")));
  TempFile no_section("lr = 0.1\n");
  EXPECT_THAT(ErrorOf({"--config", no_section.path()}),
              AllOf(HasSubstr("'lr'"), HasSubstr("did you mean 'optim.lr'?")));
  // Command-line-only switches are not file keys.
  TempFile flag("summary = true\n");
  EXPECT_THAT(ErrorOf({"--config", flag.path()}), HasSubstr("unknown key 'summary'"));
}

// ---------------------------------------------------------------------------
// Errors: types

TEST(ConfigErrors, WrongTypesNameKeyAndExpectedType) {
  struct Case {
    std::string arg, key, expected;
  };
  const std::vector<Case> cases = {
      {"--optim.lr=abc", "optim.lr", "not a number"},
      {"--optim.lr=", "optim.lr", "not a number"},
      {"--optim.lr=0.1x", "optim.lr", "not a number"},
      {"--optim.lr=nan", "optim.lr", "finite number"},
      {"--optim.lr=inf", "optim.lr", "finite number"},
      {"--train.batch_size=1.5", "train.batch_size", "not an integer"},
      {"--train.batch_size=abc", "train.batch_size", "not an integer"},
      {"--model.num_classes=99999999999", "model.num_classes", "out of range"},
      {"--train.seed=-1", "train.seed", "non-negative integer"},
      {"--optim.nesterov=maybe", "optim.nesterov", "true, false, 1, 0, yes, no"},
      {"--model.zero_init_residual=2", "model.zero_init_residual", "true, false"},
      {"--optim.milestones=30,x", "optim.milestones", "not a number"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.arg);
    EXPECT_THAT(ErrorOf({c.arg}), AllOf(HasSubstr(c.key), HasSubstr(c.expected), HasSubstr("command line")));
  }
  TempFile f("[train]\nepochs = ten\n");
  EXPECT_THAT(ErrorOf({"--config", f.path()}),
              AllOf(HasSubstr("train.epochs"), HasSubstr("not a number"), HasSubstr(f.path())));
}

// ---------------------------------------------------------------------------
// Errors: values

struct RangeCase {
  std::vector<std::string> args;
  std::string key;
  std::string allowed;
};

TEST(ConfigErrors, ImpossibleValuesNameKeyAndAllowedRange) {
  const std::vector<RangeCase> cases = {
      {{"--optim.lr=0"}, "optim.lr", "> 0"},
      {{"--optim.lr=-0.1"}, "optim.lr", "> 0"},
      {{"--optim.momentum=1"}, "optim.momentum", "[0, 1)"},
      {{"--optim.momentum=-0.1"}, "optim.momentum", "[0, 1)"},
      {{"--optim.weight_decay=-1e-4"}, "optim.weight_decay", ">= 0"},
      {{"--train.batch_size=0"}, "train.batch_size", ">= 1"},
      {{"--train.accumulate=0"}, "train.accumulate", ">= 1"},
      {{"--train.accumulate=-2"}, "train.accumulate", ">= 1"},
      {{"--train.epochs=0"}, "train.epochs", "> 0"},
      {{"--train.epochs=-1", "--train.max_steps=10"}, "train.epochs", "> 0"},
      {{"--train.max_steps=-1"}, "train.max_steps", ">= 0"},
      {{"--checkpoint.keep=0"}, "checkpoint.keep", ">= 1"},
      {{"--checkpoint.every_steps=-5"}, "checkpoint.every_steps", ">= 0"},
      {{"--checkpoint.every_minutes=-1"}, "checkpoint.every_minutes", ">= 0"},
      {{"--eval-only"}, "--eval-only", "--resume PATH"},
      {{"--eval-only", "--resume=auto"}, "--eval-only", "--resume PATH"},
      {{"--train.log_every=0"}, "train.log_every", ">= 1"},
      {{"--train.eval_every_epochs=0"}, "train.eval_every_epochs", ">= 1"},
      {{"--model.num_classes=1"}, "model.num_classes", ">= 2"},
      {{"--data.image_size=7"}, "data.image_size", ">= 8"},
      {{"--model.arch=resnet50", "--data.image_size=31"}, "data.image_size", ">= 32"},
      {{"--optim.label_smoothing=1"}, "optim.label_smoothing", "[0, 1)"},
      {{"--optim.label_smoothing=-0.1"}, "optim.label_smoothing", "[0, 1)"},
      {{"--optim.gamma=0"}, "optim.gamma", "(0, 1]"},
      {{"--optim.gamma=1.5"}, "optim.gamma", "(0, 1]"},
      {{"--optim.warmup_epochs=-1"}, "optim.warmup_epochs", ">= 0"},
      {{"--optim.warmup_start_factor=0"}, "optim.warmup_start_factor", "(0, 1]"},
      {{"--optim.warmup_start_factor=1.1"}, "optim.warmup_start_factor", "(0, 1]"},
      {{"--optim.milestones=60, 30"}, "optim.milestones", "strictly increasing"},
      {{"--optim.milestones=30, 30"}, "optim.milestones", "strictly increasing"},
      {{"--optim.milestones=-1, 30"}, "optim.milestones", ">= 0"},
      {{"--optim.nesterov=true", "--optim.momentum=0"}, "optim.nesterov", "optim.momentum"},
      {{"--optim.base_batch=0"}, "optim.base_batch", ">= 1"},
      {{"--optim.step_epochs=0"}, "optim.step_epochs", "> 0"},
      {{"--optim.min_lr=-1"}, "optim.min_lr", ">= 0"},
      {{"--train.threads=-1"}, "train.threads", ">= 0"},
      {{"--data.synthetic_samples=0"}, "data.synthetic_samples", ">= 1"},
      {{"--data.synthetic_noise=-1"}, "data.synthetic_noise", ">= 0"},
      {{"--data.val_samples=-1"}, "data.val_samples", ">= 0"},
      {{"--optim.schedule=cosin"}, "optim.schedule", "constant, step, multistep, cosine"},
      {{"--optim.schedule=linear"}, "optim.schedule", "constant, step, multistep, cosine"},
      {{"--data.source=imagenet"}, "data.source", "synthetic, hdf5"},
      {{"--model.shortcut=C"}, "model.shortcut", "auto, A, B, none"},
      {{"--model.shortcut=b"}, "model.shortcut", "auto, A, B, none"},
      {{"--data.source=hdf5"}, "data.train", "hdf5"},
      {{"--model.arch=plain34", "--model.shortcut=B"}, "model.shortcut", "auto, none"},
      {{"--train.output_dir="}, "train.output_dir", "directory"},
      {{"--train.output_dir=runs/#3"}, "train.output_dir", "'#'"},
      {{"--train.trace_steps=-1"}, "train.trace_steps", ">= 0"},
      {{"--comm.allreduce=gloo"}, "comm.allreduce", "ring, mpi, nccl"},
      // GPU-only settings on the CPU, and the [gpu] section's ranges.
      {{"--comm.allreduce=nccl"}, "comm.allreduce = nccl", "train.device = cuda"},
      {{"--device=tpu"}, "train.device", "cpu, cuda"},
      {{"--precision=fp8"}, "train.precision", "auto, fp32, bf16, fp16"},
      {{"--precision=bf16"}, "train.precision = bf16", "train.device = cuda"},
      {{"--device=cuda", "--comm.dtype=bf16"}, "comm.dtype = bf16", "comm.dtype = fp32"},
      {{"--gpu.conv_algo=fast"}, "gpu.conv_algo", "heuristic, find"},
      {{"--gpu.workspace_mb=-1"}, "gpu.workspace_mb", ">= 0"},
      {{"--gpu.deterministic=maybe"}, "gpu.deterministic", "true"},
      {{"--gpu.loss_scale=1000"}, "gpu.loss_scale", "power of two"},
      {{"--gpu.loss_scale=0"}, "gpu.loss_scale", "power of two"},
      {{"--gpu.loss_scale_window=0"}, "gpu.loss_scale_window", ">= 1"},
      {{"--comm.allreduce=Ring"}, "comm.allreduce", "ring, mpi"},
      {{"--comm.bucket_mb=0"}, "comm.bucket_mb", "> 0"},
      {{"--comm.bucket_mb=-1"}, "comm.bucket_mb", "> 0"},
      {{"--comm.dtype=fp64"}, "comm.dtype", "fp32, bf16, fp16"},
      {{"--comm.dtype=float"}, "comm.dtype", "fp32, bf16, fp16"},
      {{"--comm.segment_kb=0"}, "comm.segment_kb", ">= 1"},
      {{"--comm.segment_kb=-4"}, "comm.segment_kb", ">= 1"},
      {{"--comm.timeout=0"}, "comm.timeout", "> 0"},
      {{"--comm.timeout=-5"}, "comm.timeout", "> 0"},
      {{"--comm.check_weights_every=-1"}, "comm.check_weights_every", ">= 0"},
      // Through the aliases: the message names the key.
      {{"--allreduce=gloo"}, "comm.allreduce", "ring, mpi"},
      {{"--comm-timeout=0"}, "comm.timeout", "> 0"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(Join(c.args));
    EXPECT_THAT(ErrorOf(c.args), AllOf(StartsWith("config error:"), HasSubstr(c.key), HasSubstr(c.allowed)));
  }
}

TEST(ConfigErrors, BoundaryValuesAreAccepted) {
  const std::vector<std::vector<std::string>> ok = {
      {"--optim.momentum=0"},
      {"--optim.momentum=0.999"},
      {"--optim.weight_decay=0"},
      {"--optim.label_smoothing=0"},
      {"--optim.gamma=1"},
      {"--optim.warmup_start_factor=1"},
      {"--optim.milestones=0, 0.5"},
      {"--train.epochs=0", "--train.max_steps=10"},
      {"--train.batch_size=1"},
      {"--model.num_classes=2"},
      {"--data.image_size=8"},
      {"--model.arch=resnet50", "--data.image_size=32"},
      {"--model.arch=plain18", "--model.shortcut=none"},
      {"--model.arch=cifar-resnet8"},
      {"--model.arch=cifar-plain26"},
      {"--train.threads=0"},
      {"--data.source=hdf5", "--data.train=/x"},
      {"--optim.nesterov=true", "--optim.momentum=0.9"},
      {"--data.val_samples=0"},
      {"--train.trace_steps=0"},
      {"--comm.allreduce=mpi"},
      {"--comm.bucket_mb=0.001"},
      {"--comm.dtype=bf16"},
      {"--comm.dtype=fp16"},
      {"--comm.segment_kb=1"},
      {"--comm.timeout=0.5"},
      {"--comm.check_weights_every=0"},
      {"--comm.overlap=false"},
      {"--model.frozen_bn"},
  };
  for (const auto& args : ok) {
    SCOPED_TRACE(Join(args));
    EXPECT_NO_THROW(Parse(args));
  }
}

TEST(ConfigErrors, NewKeysWrongTypes) {
  struct Case {
    std::string arg, key, expected;
  };
  const std::vector<Case> cases = {
      {"--comm.bucket_mb=big", "comm.bucket_mb", "not a number"},
      {"--comm.segment_kb=1.5", "comm.segment_kb", "not an integer"},
      {"--comm.timeout=inf", "comm.timeout", "finite number"},
      {"--comm.check_weights_every=x", "comm.check_weights_every", "not an integer"},
      {"--comm.overlap=sometimes", "comm.overlap", "true, false"},
      {"--model.frozen_bn=2", "model.frozen_bn", "true, false"},
      {"--train.trace_steps=1e3", "train.trace_steps", "not an integer"},
      {"--comm-timeout=soon", "comm.timeout", "not a number"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.arg);
    EXPECT_THAT(ErrorOf({c.arg}), AllOf(HasSubstr(c.key), HasSubstr(c.expected), HasSubstr("command line")));
  }
}

TEST(ConfigErrors, ValidateNamesEachNewKey) {
  const std::vector<std::pair<std::function<void(Config&)>, std::string>> cases = {
      {[](Config& c) { c.train.trace_steps = -2; }, "train.trace_steps = -2"},
      {[](Config& c) { c.comm.allreduce = ""; }, "comm.allreduce = ''"},
      {[](Config& c) { c.comm.bucket_mb = 0; }, "comm.bucket_mb = 0"},
      {[](Config& c) { c.comm.dtype = "FP32"; }, "comm.dtype = 'FP32'"},
      {[](Config& c) { c.comm.segment_kb = 0; }, "comm.segment_kb = 0"},
      {[](Config& c) { c.comm.timeout = 0; }, "comm.timeout = 0"},
      {[](Config& c) { c.comm.check_weights_every = -1; }, "comm.check_weights_every = -1"},
  };
  for (const auto& [mutate, expected] : cases) {
    SCOPED_TRACE(expected);
    Config c;
    mutate(c);
    EXPECT_THAT(ValidateError(c), AllOf(StartsWith("config error:"), HasSubstr(expected)));
  }
}

TEST(ConfigErrors, UnknownArchitectureListsTheKnownOnes) {
  const std::string m = ErrorOf({"--model.arch=resnet51"});
  EXPECT_THAT(m, HasSubstr("config error: model.arch = 'resnet51' is not a known architecture; "
                           "allowed: resnet18, resnet34"));
  EXPECT_THAT(m, AllOf(HasSubstr("cifar-resnet110"), HasSubstr("6n+2"), HasSubstr("did you mean 'resnet50'?")));
  EXPECT_THAT(ErrorOf({"--model.arch=cifar-resnet9"}), HasSubstr("model.arch = 'cifar-resnet9'"));
  EXPECT_THAT(ErrorOf({"--model.arch="}), HasSubstr("model.arch"));
}

TEST(ConfigErrors, ValidateChecksAConfigDirectly) {
  Config c;
  c.optim.lr = 0;
  EXPECT_THAT(ValidateError(c), HasSubstr("optim.lr = 0"));
  c = Config{};
  c.optim.momentum = 0;
  c.optim.nesterov = true;
  EXPECT_THAT(ValidateError(c), HasSubstr("optim.nesterov"));
  c = Config{};
  c.data.train = "bad\npath";
  c.data.source = "hdf5";
  EXPECT_THAT(ValidateError(c), HasSubstr("data.train"));
  c = Config{};
  c.data.source = "hdf5";
  EXPECT_THAT(ValidateError(c), HasSubstr("data.train is empty"));
  c.data.train = "/d";
  c.data.train_augment = "randaugment";
  EXPECT_THAT(ValidateError(c), HasSubstr("data.train_augment"));
  c = Config{};
  c.data.std = {0.2, 0, 0.2};
  EXPECT_THAT(ValidateError(c), HasSubstr("data.std"));
  c = Config{};
  c.data.mean = {0.5, 0.5};
  EXPECT_THAT(ValidateError(c), HasSubstr("3 values"));
  c = Config{};
  c.data.val_resize = 16;
  EXPECT_THAT(ValidateError(c), HasSubstr("data.val_resize"));
  c = Config{};
  c.data.val_samples = -1;
  EXPECT_THAT(ValidateError(c), HasSubstr("data.val_samples"));
  c.data.source = "hdf5";
  c.data.train = "/d";
  EXPECT_NO_THROW(validate(c));
  c = Config{};
  c.data.scale_min = 500;
  EXPECT_THAT(ValidateError(c), HasSubstr("data.scale_min"));
  c = Config{};
  c.data.source = "hdf5";
  c.data.train = "/d";
  c.data.image_size = 224;
  c.data.scale_min = 200;
  EXPECT_THAT(ValidateError(c), AllOf(HasSubstr("data.scale_min = 200"), HasSubstr("data.image_size = 224")));
  c.data.train_augment = "inception";
  EXPECT_NO_THROW(validate(c));
  EXPECT_NO_THROW(validate(EveryFieldChanged()));
}

// ---------------------------------------------------------------------------
// Errors: files and command-line syntax

TEST(ConfigErrors, MissingConfigFileNamesThePath) {
  const std::string path = "/nonexistent-dir/none.cfg";
  EXPECT_THAT(ErrorOf({"--config", path}), AllOf(HasSubstr("cannot read config file"), HasSubstr(path)));
  const std::string dir = fs::temp_directory_path().string();
  EXPECT_THAT(ErrorOf({"--config", dir}), AllOf(HasSubstr(dir), HasSubstr("directory")));
  EXPECT_THAT(ErrorOf({"--config="}), HasSubstr("--config"));
}

TEST(ConfigErrors, UnreadableConfigFileNamesThePath) {
  TempFile f("[optim]\nlr = 0.1\n");
  fs::permissions(f.path(), fs::perms::none);
  if (std::ifstream(f.path()).good()) GTEST_SKIP() << "running as root: permissions not enforced";
  EXPECT_THAT(ErrorOf({"--config", f.path()}), AllOf(HasSubstr("cannot read config file"), HasSubstr(f.path())));
}

TEST(ConfigErrors, MalformedFileNamesTheFile) {
  TempFile f("[optim]\nlr 0.1\n");
  EXPECT_THAT(ErrorOf({"--config", f.path()}), AllOf(HasSubstr(f.path()), HasSubstr("lr 0.1")));
  TempFile dup("[optim]\nlr = 0.1\nlr = 0.2\n");
  EXPECT_THAT(ErrorOf({"--config", dup.path()}),
              AllOf(HasSubstr("optim.lr"), HasSubstr("more than once"), HasSubstr(dup.path())));
}

TEST(ConfigErrors, CommandLineSyntax) {
  EXPECT_THAT(ErrorOf({"train.cfg"}), AllOf(HasSubstr("unexpected argument 'train.cfg'"), HasSubstr("--config FILE")));
  EXPECT_THAT(ErrorOf({"--optim.lr"}),
              AllOf(HasSubstr("--optim.lr"), HasSubstr("no value"), HasSubstr("--optim.lr=VALUE")));
  EXPECT_THAT(ErrorOf({"--optim.lr", "--summary"}), AllOf(HasSubstr("--optim.lr"), HasSubstr("no value")));
  EXPECT_THAT(ErrorOf({"--config"}), AllOf(HasSubstr("--config"), HasSubstr("no value")));
  EXPECT_THAT(ErrorOf({"--optim.lr=0.1", "--optim.lr=0.2"}),
              AllOf(HasSubstr("--optim.lr"), HasSubstr("more than once")));
  EXPECT_THAT(ErrorOf({"--summary=yes"}), HasSubstr("--summary"));
}

}  // namespace
}  // namespace rn
