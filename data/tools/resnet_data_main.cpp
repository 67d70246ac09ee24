// resnet-data: make, convert, inspect and verify sharded HDF5 datasets
// (data/FORMAT.md).
//
//   resnet-data synth --classes C --count N --size WxH --out DIR
//                     [--shard-size S] [--seed X] [--layout jpeg|raw] [--split train|val]
//   resnet-data convert cifar10 --src DIR --out DIR [--shard-size S]
//   resnet-data convert imagenet --src DIR --out DIR [--labels FILE] [--classes DATASET]
//                     [--max-side S] [--quality Q] [--shard-size S] [--threads T] [--max-bad N]
//   resnet-data inspect DIR
//   resnet-data verify DIR
//
// The ImageNet folder scan and labels files are data/imagenet_folder.h, the
// conversion (threads, order, re-encoding) data/imagenet_convert.h.
//
// Exit codes: 0 fine, 1 data problem (verify; convert imagenet: more images
// that do not decode than --max-bad) or internal error, 2 usage error (the
// message says what to fix).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/imagenet_convert.h"
#include "data/jpeg_codec.h"
#include "data/shard_format.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "data/synthetic_source.h"
#include "trainer/core/error.h"

namespace {

namespace fs = std::filesystem;
using namespace rn::shards;
using rn::UserError;

constexpr const char* kUsage =
    "usage: resnet-data <command> [options]\n"
    "\n"
    "commands:\n"
    "  synth --classes C --count N --size WxH --out DIR [--shard-size S] [--seed X] [--layout jpeg|raw]\n"
    "        [--split train|val]\n"
    "        a learnable synthetic dataset (class patterns of resnet-train's synthetic source; the\n"
    "        two splits of one seed share the classes and differ in every sample)\n"
    "  convert cifar10 --src DIR --out DIR [--shard-size S]\n"
    "        the CIFAR-10 binary batches -> DIR/train (data_batch_1..5) and DIR/val (test_batch), layout raw\n"
    "  convert imagenet --src DIR --out DIR [--labels FILE] [--classes DATASET] [--max-side S] [--quality Q]\n"
    "                   [--shard-size N] [--threads T] [--max-bad N]\n"
    "        one ImageNet-style folder -> one dataset, layout jpeg (convert train/ and val/ separately):\n"
    "          class folders: DIR/<class>/<image>; classes are the sorted folder names (torchvision's ImageFolder)\n"
    "          flat folder:   DIR/<image> plus --labels FILE; classes are the sorted distinct names in FILE\n"
    "        images are *.JPEG, *.jpg, *.jpeg (any case), sorted by file name within a class; hidden and other\n"
    "        files are ignored (and counted). Every image is decoded once to check it; CMYK JPEGs are converted\n"
    "        to RGB (re-encoded at --quality); other images are stored byte-identical unless --max-side applies.\n"
    "        --labels FILE      labels of a flat folder, either\n"
    "                           lines 'FILENAME CLASS' (whitespace or comma separated; FILENAME with or without\n"
    "                           its extension; CLASS a class name such as n01440764, or with --classes a\n"
    "                           0-based index into that list), or\n"
    "                           Kaggle's LOC_val_solution.csv (header ImageId,PredictionString; the class is\n"
    "                           the first token of PredictionString)\n"
    "        --classes DATASET  use the class list of a converted dataset (e.g. the train set), so that\n"
    "                           validation labels match training's\n"
    "        --max-side S       re-encode images whose shorter side exceeds S so that it is exactly S (OpenCV\n"
    "                           INTER_AREA, aspect kept); smaller ones stay byte-identical (default 0: no resize)\n"
    "        --quality Q        JPEG quality of re-encoded images, 1..100 (default 90)\n"
    "        --shard-size N     samples per shard (default 1024)\n"
    "        --threads T        threads reading, checking and re-encoding (default: the number of cores); one\n"
    "                           writer keeps the output identical for any T\n"
    "        --max-bad N        files that do not decode (e.g. a PNG named .JPEG) are skipped and listed; more\n"
    "                           than N stop the conversion with exit 1 and no dataset (default 100)\n"
    "  inspect DIR    print the manifest summary and per-class counts\n"
    "  verify DIR     check checksums, labels and (jpeg) that every image decodes\n"
    "\n"
    "exit codes: 0 fine, 1 data problem (verify; convert imagenet: more than --max-bad bad images) or internal\n"
    "error, 2 usage error\n";

// "--key value" pairs after the subcommand; positional arguments kept apart.
struct Args {
  std::string command;
  std::map<std::string, std::string> opts;
  std::vector<std::string> positional;

  bool has(const std::string& k) const { return opts.count(k) > 0; }
  std::string str(const std::string& k) const {
    auto it = opts.find(k);
    if (it == opts.end()) throw UserError(command + ": missing --" + k + " (see resnet-data --help)");
    return it->second;
  }
  int64_t integer(const std::string& k, int64_t def, int64_t min, bool required = false) const {
    if (!has(k)) {
      if (required) str(k);
      return def;
    }
    const std::string v = str(k);
    size_t pos = 0;
    int64_t x = 0;
    try {
      x = std::stoll(v, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos == 0 || pos != v.size()) throw UserError(command + ": --" + k + " must be an integer, got '" + v + "'");
    if (x < min) throw UserError(command + ": --" + k + " must be >= " + std::to_string(min) + ", got " + v);
    return x;
  }
  void allow(std::initializer_list<const char*> keys) const {
    for (const auto& [k, v] : opts)
      if (std::find_if(keys.begin(), keys.end(), [&](const char* a) { return k == a; }) == keys.end())
        throw UserError(command + ": unknown option --" + k + " (see resnet-data --help)");
  }
};

Args parse(int argc, char** argv) {
  Args a;
  a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      std::string key = s.substr(2), value;
      const auto eq = key.find('=');
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else {
        if (i + 1 >= argc) throw UserError(a.command + ": --" + key + " needs a value");
        value = argv[++i];
      }
      if (key.empty()) throw UserError(a.command + ": empty option name '" + s + "'");
      a.opts[key] = value;
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

// "\r<label>: done/total images, X img/s, ETA Ys" on stderr, at most twice a second.
class Progress {
 public:
  Progress(std::string label, int64_t total) : label_(std::move(label)), total_(total) {}
  void update(int64_t done, bool force = false) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(500)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double ips = done / std::max(secs, 1e-9);
    const double eta = ips > 0 ? double(total_ - done) / ips : 0;
    std::fprintf(stderr, "\r%s: %lld/%lld images, %.0f img/s, ETA %.0fs   ", label_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), ips, eta);
    std::fflush(stderr);
  }
  void finish(int64_t done) {
    update(done, true);
    std::fputc('\n', stderr);
  }

 private:
  std::string label_;
  int64_t total_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

std::string join_args(int argc, char** argv) {
  std::string s = "resnet-data";
  for (int i = 1; i < argc; ++i) s += std::string(" ") + argv[i];
  return s;
}


int cmd_synth(const Args& a, const std::string& origin) {
  a.allow({"classes", "count", "size", "out", "shard-size", "seed", "layout", "split"});
  if (!a.positional.empty()) throw UserError("synth: unexpected argument '" + a.positional[0] + "'");
  const int classes = static_cast<int>(a.integer("classes", 0, 1, true));
  const int64_t count = a.integer("count", 0, 1, true);
  const std::string size = a.str("size");
  int w = 0, h = 0;
  char x = 0, extra = 0;
  if (std::sscanf(size.c_str(), "%d%c%d%c", &w, &x, &h, &extra) != 3 || x != 'x' || w < 1 || h < 1 || w > 4096 ||
      h > 4096)
    throw UserError("synth: --size must be WIDTHxHEIGHT, e.g. 32x32 (each 1..4096), got '" + size + "'");
  ShardWriterOptions o;
  o.dir = a.str("out");
  o.name = "synth";
  o.origin = origin;
  o.layout = parse_layout(a.has("layout") ? a.str("layout") : "jpeg", "synth: --layout");
  o.num_classes = classes;
  o.image_height = h;
  o.image_width = w;
  o.shard_size = a.integer("shard-size", 1024, 1);
  const uint64_t seed = static_cast<uint64_t>(a.integer("seed", 1, 0));
  // Both splits share the class patterns of `seed`; their samples differ.
  const std::string split = a.has("split") ? a.str("split") : "train";
  if (split != "train" && split != "val") throw UserError("synth: --split must be train or val, got '" + split + "'");
  const uint64_t stream = split == "train" ? 0 : 1;
  for (int k = 0; k < classes; ++k) o.class_names.push_back("class" + std::to_string(k));

  // The source draws square images of max(W, H); we keep the top-left W x H.
  const int s = std::max(w, h);
  rn::SyntheticSource src(rn::SyntheticOptions{classes, s, 0.5, seed});
  ShardWriter writer(o);
  Progress progress("synth", count);
  constexpr int64_t kBatch = 64;
  rn::HostBatch batch;
  std::vector<uint8_t> hwc(static_cast<size_t>(h) * w * 3);
  for (int64_t first = 0; first < count; first += kBatch) {
    batch.resize(std::min(kBatch, count - first), s);
    src.fill(stream, static_cast<uint64_t>(first), batch);
    for (int64_t i = 0; i < batch.n; ++i) {
      const float* img = batch.images.data() + static_cast<size_t>(i) * 3 * s * s;
      // Pattern values are about [-2, 2]: map to [0, 255] around 128.
      for (int y = 0; y < h; ++y)
        for (int xx = 0; xx < w; ++xx)
          for (int c = 0; c < 3; ++c) {
            const float v = 128.f + 60.f * img[(static_cast<size_t>(c) * s + y) * s + xx];
            hwc[(static_cast<size_t>(y) * w + xx) * 3 + c] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
          }
      const int32_t label = batch.labels[static_cast<size_t>(i)];
      if (o.layout == Layout::kJpeg)
        writer.add_jpeg(rn::encode_jpeg(hwc.data(), w, h, 90), label);
      else
        writer.add_raw(hwc.data(), label);
    }
    progress.update(first + batch.n);
  }
  const Manifest m = writer.finish();
  progress.finish(count);
  std::printf("wrote %lld samples in %zu shard(s) to %s\n", static_cast<long long>(m.total_samples), m.shards.size(),
              o.dir.c_str());
  return 0;
}

// CIFAR-10 binary version: records of 1 label byte + 3072 bytes (1024 R,
// 1024 G, 1024 B, each 32x32 row-major).
void convert_cifar_split(const std::vector<std::string>& files, const std::string& out,
                         const std::vector<std::string>& class_names, int64_t shard_size, const std::string& origin,
                         const std::string& split) {
  constexpr size_t kRecord = 1 + 3072;
  int64_t total = 0;
  for (const auto& f : files) {
    const auto bytes = fs::file_size(f);
    if (bytes == 0 || bytes % kRecord != 0)
      throw UserError(f + " has " + std::to_string(bytes) + " bytes, not a multiple of the CIFAR-10 record size " +
                      std::to_string(kRecord) + ": is it the binary version (cifar-10-binary.tar.gz)?");
    total += static_cast<int64_t>(bytes / kRecord);
  }
  ShardWriterOptions o;
  o.dir = out;
  o.name = "cifar10-" + split;
  o.origin = origin;
  o.layout = Layout::kRaw;
  o.num_classes = 10;
  o.class_names = class_names;
  o.image_height = 32;
  o.image_width = 32;
  o.shard_size = shard_size;
  ShardWriter writer(o);
  Progress progress("convert cifar10 " + split, total);
  std::vector<uint8_t> rec(kRecord), hwc(3072);
  int64_t done = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw UserError("cannot read " + f);
    for (int64_t r = 0; in.read(reinterpret_cast<char*>(rec.data()), kRecord); ++r) {
      const int label = rec[0];
      if (label > 9) throw UserError(f + ": record " + std::to_string(r) + " has label " + std::to_string(label) + ", expected 0..9");
      for (int c = 0; c < 3; ++c)
        for (int p = 0; p < 1024; ++p) hwc[static_cast<size_t>(p) * 3 + c] = rec[1 + static_cast<size_t>(c) * 1024 + p];
      writer.add_raw(hwc.data(), label);
      progress.update(++done);
    }
  }
  writer.finish();
  progress.finish(done);
  std::printf("wrote %lld %s samples to %s\n", static_cast<long long>(done), split.c_str(), out.c_str());
}

void print_imagenet_summary(const rn::data::ImageList& list, const rn::data::ImagenetConvertReport& r,
                            const rn::data::ImagenetConvertOptions& o) {
  std::printf("wrote %lld samples of %zu classes in %zu shard(s) to %s\n", static_cast<long long>(r.written),
              list.class_names.size(), r.shards, o.out.c_str());
  if (r.resized)
    std::printf("resized %lld images to a shorter side of %d\n", static_cast<long long>(r.resized), o.max_side);
  if (r.from_cmyk) std::printf("converted %lld CMYK images to RGB\n", static_cast<long long>(r.from_cmyk));
  if (!r.skipped.empty()) {
    std::printf("skipped %zu file(s) that could not be read or decoded (--max-bad %lld):\n", r.skipped.size(),
                static_cast<long long>(o.max_bad));
    for (const auto& s : r.skipped) std::printf("  %s: %s\n", s.path.c_str(), s.reason.c_str());
  }
}

int cmd_convert_imagenet(const Args& a, const std::string& origin) {
  a.allow({"src", "out", "labels", "classes", "max-side", "quality", "shard-size", "threads", "max-bad"});
  rn::data::ImagenetConvertOptions o;
  o.src = a.str("src");
  o.out = a.str("out");
  if (a.has("labels")) o.labels = a.str("labels");
  if (a.has("classes")) o.classes = a.str("classes");
  o.origin = origin;
  o.shard_size = a.integer("shard-size", 1024, 1);
  o.threads = static_cast<int>(a.integer("threads", std::max(1u, std::thread::hardware_concurrency()), 1));
  if (o.threads > 1024) throw UserError("convert: --threads must be <= 1024, got " + a.str("threads"));
  o.max_side = static_cast<int>(a.integer("max-side", 0, 0));
  o.quality = static_cast<int>(a.integer("quality", 90, 1));
  if (o.quality > 100) throw UserError("convert: --quality must be 1..100, got " + a.str("quality"));
  o.max_bad = a.integer("max-bad", 100, 0);
  std::optional<Progress> progress;
  try {
    const rn::data::ImageList list = rn::data::list_imagenet_images(o);
    std::printf("found %zu images of %zu classes in %s\n", list.images.size(), list.class_names.size(), o.src.c_str());
    if (!list.ignored.empty())
      std::printf("ignored %zu entries that are hidden or not images (*.JPEG, *.jpg, *.jpeg), e.g. %s\n",
                  list.ignored.size(), list.ignored[0].c_str());
    std::fflush(stdout);
    progress.emplace("convert imagenet", static_cast<int64_t>(list.images.size()));
    const auto report = rn::data::convert_imagenet(list, o, [&](int64_t done) { progress->update(done); });
    progress->finish(static_cast<int64_t>(list.images.size()));
    print_imagenet_summary(list, report, o);
    return 0;
  } catch (const UserError& e) {
    if (progress) std::fputc('\n', stderr);  // end the progress line
    const std::string what = std::string("convert imagenet: ") + e.what();
    if (dynamic_cast<const rn::data::DataError*>(&e)) throw rn::data::DataError(what);
    throw UserError(what);
  }
}

int cmd_convert(const Args& a, const std::string& origin) {
  if (a.positional.empty()) throw UserError("convert: say which dataset, e.g. 'resnet-data convert cifar10 ...'");
  if (a.positional[0] != "cifar10" && a.positional[0] != "imagenet")
    throw UserError("convert: dataset '" + a.positional[0] + "' is not supported (supported: cifar10, imagenet)");
  if (a.positional.size() > 1) throw UserError("convert: unexpected argument '" + a.positional[1] + "'");
  if (a.positional[0] == "imagenet") return cmd_convert_imagenet(a, origin);
  a.allow({"src", "out", "shard-size"});
  const std::string src = a.str("src"), out = a.str("out");
  const int64_t shard_size = a.integer("shard-size", 10000, 1);
  if (!fs::is_directory(src)) throw UserError("convert cifar10: --src " + src + " is not a directory");
  std::vector<std::string> train;
  for (int b = 1; b <= 5; ++b) train.push_back((fs::path(src) / ("data_batch_" + std::to_string(b) + ".bin")).string());
  const std::string test = (fs::path(src) / "test_batch.bin").string();
  const std::string meta = (fs::path(src) / "batches.meta.txt").string();
  for (const auto& f : train)
    if (!fs::is_regular_file(f)) throw UserError("convert cifar10: " + f + " is missing (expected the binary version)");
  if (!fs::is_regular_file(test)) throw UserError("convert cifar10: " + test + " is missing");
  std::vector<std::string> names;
  {
    std::ifstream in(meta);
    if (!in) throw UserError("convert cifar10: " + meta + " is missing");
    for (std::string line; std::getline(in, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty()) names.push_back(line);
    }
    if (names.size() != 10)
      throw UserError("convert cifar10: " + meta + " lists " + std::to_string(names.size()) +
                      " class names, expected 10");
  }
  for (const char* split : {"train", "val"})
    if (fs::exists(fs::path(out) / split) && !fs::is_empty(fs::path(out) / split))
      throw UserError("convert cifar10: " + (fs::path(out) / split).string() +
                      " already exists and is not empty: remove it or choose another --out");
  convert_cifar_split(train, (fs::path(out) / "train").string(), names, shard_size, origin, "train");
  convert_cifar_split({test}, (fs::path(out) / "val").string(), names, shard_size, origin, "val");
  return 0;
}

std::string one_dir(const Args& a) {
  a.allow({});
  if (a.positional.size() != 1) throw UserError(a.command + ": give exactly one dataset directory");
  const std::string dir = a.positional[0];
  if (!fs::is_directory(dir)) throw UserError(a.command + ": dataset directory " + dir + " does not exist");
  return dir;
}

int cmd_inspect(const Args& a) {
  const std::string dir = one_dir(a);
  ShardReader r(dir);
  const Manifest& m = r.manifest();
  std::printf("dataset:        %s\n", dir.c_str());
  std::printf("name:           %s\n", m.name.c_str());
  std::printf("origin:         %s\n", m.origin.c_str());
  std::printf("format_version: %d\n", m.format_version);
  std::printf("layout:         %s", layout_name(m.layout).c_str());
  if (m.layout == Layout::kRaw) std::printf(" (%dx%dx3 per image)", m.image_width, m.image_height);
  std::printf("\nsamples:        %lld\n", static_cast<long long>(m.total_samples));
  std::printf("classes:        %d\n", m.num_classes);
  std::printf("shards:         %zu\n", m.shards.size());
  for (const auto& s : m.shards)
    std::printf("  %s  %lld samples  %s %s\n", s.file.c_str(), static_cast<long long>(s.samples), kChecksumAlgorithm,
                checksum_hex(s.checksum).c_str());
  std::vector<int64_t> counts(static_cast<size_t>(m.num_classes), 0);
  int64_t out_of_range = 0;
  for (int64_t i = 0; i < r.size(); ++i) {
    const int32_t l = r.label(i);
    if (l >= 0 && l < m.num_classes) ++counts[static_cast<size_t>(l)];
    else ++out_of_range;
  }
  std::printf("per-class counts:\n");
  for (int k = 0; k < m.num_classes; ++k)
    std::printf("  %3d %-20s %lld\n", k, m.class_names[static_cast<size_t>(k)].c_str(),
                static_cast<long long>(counts[static_cast<size_t>(k)]));
  if (out_of_range) std::printf("  labels out of range: %lld (run resnet-data verify)\n", static_cast<long long>(out_of_range));
  return 0;
}

int cmd_verify(const Args& a) {
  const std::string dir = one_dir(a);
  VerifyReport r;
  try {
    r = verify_dataset(dir);
  } catch (const UserError& e) {  // no readable manifest: the dataset itself is bad
    std::fprintf(stderr, "resnet-data verify: FAILED: %s\n", e.what());
    return 1;
  }
  for (const auto& p : r.problems) std::fprintf(stderr, "resnet-data verify: %s\n", p.c_str());
  std::printf("%s: %lld samples checked, %lld images decoded, %zu problem(s)\n", dir.c_str(),
              static_cast<long long>(r.samples_checked), static_cast<long long>(r.images_decoded), r.problems.size());
  std::printf("%s\n", r.ok() ? "OK" : "FAILED");
  return r.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("resnet-data %s (shard format version %d)\n", RN_VERSION, kFormatVersion);
    return 0;
  }
  try {
    const Args a = parse(argc, argv);
    if (a.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (cmd == "synth") return cmd_synth(a, join_args(argc, argv));
    if (cmd == "convert") return cmd_convert(a, join_args(argc, argv));
    if (cmd == "inspect") return cmd_inspect(a);
    if (cmd == "verify") return cmd_verify(a);
    throw UserError("unknown command '" + cmd + "' (commands: synth, convert, inspect, verify; see --help)");
  } catch (const rn::data::DataError& e) {
    std::fprintf(stderr, "resnet-data: error: %s\n", e.what());
    return 1;
  } catch (const UserError& e) {
    std::fprintf(stderr, "resnet-data: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "resnet-data: internal error: %s\n", e.what());
    return 1;
  }
}
