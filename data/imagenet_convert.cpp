#include "data/imagenet_convert.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "data/jpeg_codec.h"
#include "data/shard_format.h"
#include "data/shard_writer.h"

namespace rn::data {

namespace fs = std::filesystem;

namespace {

// The skipped files listed in an error message; the rest are counted.
constexpr size_t kListedInError = 20;
// Bounds the prepared images held in memory (about 110 KB each for ImageNet).
constexpr int64_t kMaxInFlight = 4096;

// Runs work(i) for i in [0, n) on `threads` threads and consume(i, result) on
// the calling thread in index order. A worker starts item i only once item
// i - window has been consumed, which bounds the results held in memory. An
// exception from work() is rethrown here at its index; one from consume()
// stops the workers (after their current item) and propagates.
template <class R, class Work, class Consume>
void run_in_order(int64_t n, int threads, int64_t window, Work&& work, Consume&& consume) {
  struct Slot {
    std::optional<R> result;
    std::exception_ptr error;
  };
  std::vector<Slot> slots(static_cast<size_t>(window));
  std::mutex m;
  std::condition_variable slot_free, slot_ready;
  int64_t next = 0, consumed = 0;
  bool stop = false;
  const auto worker = [&] {
    for (;;) {
      int64_t i = 0;
      {
        std::unique_lock lock(m);
        slot_free.wait(lock, [&] { return stop || next >= n || next < consumed + window; });
        if (stop || next >= n) return;
        i = next++;
      }
      Slot s;
      try {
        s.result.emplace(work(i));
      } catch (...) {
        s.error = std::current_exception();
      }
      {
        std::lock_guard lock(m);
        slots[static_cast<size_t>(i % window)] = std::move(s);
      }
      slot_ready.notify_all();
    }
  };
  std::vector<std::jthread> pool;  // joined last: after `stopper` has woken every worker
  struct Stopper {
    std::function<void()> f;
    ~Stopper() { f(); }
  } stopper{[&] {
    {
      std::lock_guard lock(m);
      stop = true;
    }
    slot_free.notify_all();
  }};
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (int64_t i = 0; i < n; ++i) {
    Slot s;
    {
      std::unique_lock lock(m);
      Slot& slot = slots[static_cast<size_t>(i % window)];
      slot_ready.wait(lock, [&] { return slot.result || slot.error; });
      s = std::exchange(slot, Slot{});
      consumed = i + 1;
    }
    slot_free.notify_all();
    if (s.error) std::rethrow_exception(s.error);
    consume(i, *s.result);
  }
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw UserError("cannot read it: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot open it: " + std::system_category().message(errno));
  std::vector<uint8_t> bytes(size);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw UserError("cannot read it: " + std::system_category().message(errno));
  return bytes;
}

DecodedImage resize_short_side(const DecodedImage& in, int side) {
  const bool wide = in.width >= in.height;
  const int shorter = wide ? in.height : in.width, longer = wide ? in.width : in.height;
  const int scaled = static_cast<int>(std::lround(static_cast<double>(longer) * side / shorter));
  DecodedImage out;
  out.width = wide ? scaled : side;
  out.height = wide ? side : scaled;
  out.rgb.resize(static_cast<size_t>(out.width) * out.height * 3);
  const cv::Mat src(in.height, in.width, CV_8UC3, const_cast<uint8_t*>(in.rgb.data()));
  cv::Mat dst(out.height, out.width, CV_8UC3, out.rgb.data());  // resize writes into out.rgb
  cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_AREA);
  return out;
}

struct Outcome {
  PreparedImage image;
  std::string error;  // why the file is skipped; empty when it converted
};

Outcome prepare_file(const std::string& path, const ImagenetConvertOptions& o) {
  Outcome out;
  try {
    out.image = prepare_image(read_file(path), o.max_side, o.quality);
  } catch (const UserError& e) {  // JpegError or unreadable: skip and report it
    out.error = e.what();
  }
  return out;
}

std::string listing(const std::vector<SkippedImage>& skipped) {
  std::string s;
  for (size_t i = 0; i < skipped.size() && i < kListedInError; ++i)
    s += "\n  " + skipped[i].path + ": " + skipped[i].reason;
  if (skipped.size() > kListedInError) s += "\n  ... and " + std::to_string(skipped.size() - kListedInError) + " more";
  return s;
}

std::vector<std::string> class_names_of(const std::string& dataset) {
  try {
    return shards::read_manifest(dataset).class_names;
  } catch (const UserError& e) {
    throw UserError(std::string("--classes must be a converted dataset (e.g. the train set): ") + e.what());
  }
}

// "train" for "data/imagenet/train/": names the dataset in its manifest.
std::string folder_name(const std::string& dir) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

ImagenetConvertReport write_dataset(const ImageList& list, const ImagenetConvertOptions& o,
                                    const std::function<void(int64_t)>& progress) {
  shards::ShardWriterOptions w;
  w.dir = o.out;
  w.name = "imagenet-" + folder_name(o.src);
  w.origin = o.origin;
  w.layout = shards::Layout::kJpeg;
  w.num_classes = static_cast<int>(list.class_names.size());
  w.class_names = list.class_names;
  w.shard_size = o.shard_size;
  shards::ShardWriter writer(w);
  ImagenetConvertReport r;
  const auto n = static_cast<int64_t>(list.images.size());
  // About a shard of images in flight: workers keep going while the writer flushes one.
  const int64_t window = std::min(std::max(o.shard_size, 4 * int64_t{o.threads}), kMaxInFlight);
  run_in_order<Outcome>(
      n, o.threads, window, [&](int64_t i) { return prepare_file(list.images[static_cast<size_t>(i)].path, o); },
      [&](int64_t i, Outcome& x) {
        const LabelledImage& img = list.images[static_cast<size_t>(i)];
        if (!x.error.empty()) {
          r.skipped.push_back({img.path, x.error});
          if (static_cast<int64_t>(r.skipped.size()) > o.max_bad)
            throw DataError("stopped after " + std::to_string(r.skipped.size()) +
                            " file(s) that could not be read or decoded, more than --max-bad " +
                            std::to_string(o.max_bad) + " allows; nothing was written to " + o.out + ":" +
                            listing(r.skipped) + "\nreplace or remove these files, or raise --max-bad to skip them");
        } else {
          writer.add_jpeg(x.image.jpeg, img.label);
          ++r.written;
          r.resized += x.image.resized;
          r.from_cmyk += x.image.from_cmyk;
        }
        progress(i + 1);
      });
  if (r.written == 0)
    throw DataError("none of the " + std::to_string(n) + " images of " + o.src +
                    " could be read and decoded; nothing was written:" + listing(r.skipped));
  r.shards = writer.finish().shards.size();
  return r;
}

}  // namespace

PreparedImage prepare_image(std::vector<uint8_t> file, int max_side, int quality) {
  const JpegHeader h = read_jpeg_header(file.data(), file.size());
  PreparedImage p;
  p.from_cmyk = h.colorspace == JpegColorspace::kCmyk || h.colorspace == JpegColorspace::kYcck;
  p.resized = max_side > 0 && std::min(h.width, h.height) > max_side;
  if (!p.from_cmyk && !p.resized) {
    decode_jpeg(file.data(), file.size());  // the loader's decoder must read it as stored
    p.jpeg = std::move(file);
    return p;
  }
  DecodedImage img = decode_jpeg_any_colorspace(file.data(), file.size());
  if (p.resized) img = resize_short_side(img, max_side);
  p.jpeg = encode_jpeg(img.rgb.data(), img.width, img.height, quality);
  return p;
}

ImageList list_imagenet_images(const ImagenetConvertOptions& o) {
  if (!fs::is_directory(o.src))
    throw UserError("--src " + o.src + (fs::exists(o.src) ? " is not a directory" : " does not exist"));
  if (fs::exists(o.out) && !(fs::is_directory(o.out) && fs::is_empty(o.out)))
    throw UserError("output directory " + o.out +
                    " already exists and is not empty: remove it or choose another --out");
  std::optional<ClassList> classes;
  if (!o.classes.empty()) classes = ClassList{class_names_of(o.classes), "the dataset " + o.classes + " (--classes)"};
  return o.labels.empty() ? scan_class_folders(o.src, classes) : scan_flat_folder(o.src, o.labels, classes);
}

ImagenetConvertReport convert_imagenet(const ImageList& list, const ImagenetConvertOptions& o,
                                       const std::function<void(int64_t done)>& progress) {
  if (o.threads < 1) throw UserError("threads must be >= 1, got " + std::to_string(o.threads));
  const bool made_out = !fs::exists(o.out);
  try {
    return write_dataset(list, o, progress);
  } catch (...) {
    // The writer has removed its shards; leave no empty directory we made either.
    std::error_code ec;
    if (made_out) fs::remove(o.out, ec);
    throw;
  }
}

}  // namespace rn::data
