#include "data/augment.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "trainer/core/error.h"

namespace rn::data {

namespace {

// fb.resnet.torch's PCA of ImageNet pixel colours (pixel/255 units): the
// eigenvalues and, per row R, G, B, the components of the three eigenvectors.
constexpr double kEigval[3] = {0.2175, 0.0188, 0.0045};
constexpr double kEigvec[3][3] = {
    {-0.5675, 0.7192, 0.4009},
    {-0.5808, -0.0045, -0.8140},
    {-0.5836, -0.6948, 0.4203},
};

// Python's round() (halves to even, the default floating-point rounding
// mode), as in torchvision's crop arithmetic; used for every rounding here so
// that windows match torchvision's.
int round_int(double v) { return static_cast<int>(std::nearbyint(v)); }

[[noreturn]] void bad(const std::string& what) { throw UserError("augmentation: " + what); }

void check_options(const AugmentOptions& o) {
  const bool center = o.kind == AugmentKind::kCenter || o.kind == AugmentKind::kTenCrop;
  if (o.out_size < 1) bad(fmt::format("out_size = {} must be at least 1", o.out_size));
  if (o.scale_min < 1) bad(fmt::format("scale_min = {} must be at least 1", o.scale_min));
  if (o.scale_min > o.scale_max)
    bad(fmt::format("scale_min = {} > scale_max = {}; the shorter-side range must be ordered", o.scale_min,
                    o.scale_max));
  if (o.kind == AugmentKind::kScale && o.scale_min < o.out_size)
    bad(fmt::format("scale_min = {} < out_size = {}: the crop must fit in the rescaled image", o.scale_min,
                    o.out_size));
  // Negated comparisons so that NaN is rejected too.
  if (!(o.area_min > 0 && o.area_min <= o.area_max && o.area_max <= 1))
    bad(fmt::format("area_min = {} and area_max = {} must satisfy 0 < area_min <= area_max <= 1", o.area_min,
                    o.area_max));
  if (!(o.ratio_min > 0 && o.ratio_min <= o.ratio_max))
    bad(fmt::format("ratio_min = {} and ratio_max = {} must satisfy 0 < ratio_min <= ratio_max", o.ratio_min,
                    o.ratio_max));
  if (center && o.resize_size < o.out_size)
    bad(fmt::format("resize_size = {} < out_size = {}: kind {} crops out_size from the resized image", o.resize_size,
                    o.out_size, augment_kind_name(o.kind)));
  if (o.pad < 0) bad(fmt::format("pad = {} must be >= 0", o.pad));
  if (!(o.lighting_std >= 0)) bad(fmt::format("lighting_std = {} must be >= 0 (0 turns lighting off)", o.lighting_std));
  for (int c = 0; c < 3; ++c)
    if (!(o.stddev[c] > 0)) bad(fmt::format("stddev[{}] = {} must be > 0", c, o.stddev[c]));
}

// The source square that becomes the out_size crop once the image is
// rescaled so that its shorter side is `resized_short`.
int square_side(int out_size, int short_side, double resized_short) {
  return std::clamp(round_int(out_size * double(short_side) / resized_short), 1, short_side);
}

// torchvision's RandomResizedCrop.get_params.
CropWindow inception_window(const AugmentOptions& o, int width, int height, SampleRng& rng) {
  const double area = double(width) * height;
  const double log_min = std::log(o.ratio_min), log_max = std::log(o.ratio_max);
  CropWindow win;
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(o.area_min, o.area_max);
    const double ratio = std::exp(rng.uniform(log_min, log_max));
    win.w = round_int(std::sqrt(target * ratio));
    win.h = round_int(std::sqrt(target / ratio));
    if (win.w > 0 && win.w <= width && win.h > 0 && win.h <= height) {
      win.y = int(rng.between(0, height - win.h));
      win.x = int(rng.between(0, width - win.w));
      return win;
    }
  }
  // The central crop, as close to the image's shape as the ratio range allows.
  const double in_ratio = double(width) / height;
  win.w = width;
  win.h = height;
  if (in_ratio < o.ratio_min)
    win.h = std::max(1, round_int(width / o.ratio_min));
  else if (in_ratio > o.ratio_max)
    win.w = std::max(1, round_int(height * o.ratio_max));
  win.y = (height - win.h) / 2;
  win.x = (width - win.w) / 2;
  return win;
}

}  // namespace

AugmentKind parse_augment_kind(const std::string& name, const std::string& where) {
  for (AugmentKind k :
       {AugmentKind::kScale, AugmentKind::kInception, AugmentKind::kCenter, AugmentKind::kTenCrop, AugmentKind::kCifar})
    if (name == augment_kind_name(k)) return k;
  throw UserError(where + ": augmentation '" + name +
                  "' is not known; expected \"scale\", \"inception\", \"center\", \"tencrop\" or \"cifar\"");
}

std::string augment_kind_name(AugmentKind k) {
  switch (k) {
    case AugmentKind::kScale: return "scale";
    case AugmentKind::kInception: return "inception";
    case AugmentKind::kCenter: return "center";
    case AugmentKind::kTenCrop: return "tencrop";
    case AugmentKind::kCifar: return "cifar";
  }
  throw_internal("augment_kind_name", __FILE__, __LINE__, fmt::format("kind {}", int(k)));
}

CropWindow scale_window(const CropWindow& w, int num, int denom, int scaled_width, int scaled_height) {
  RN_CHECK(
      w.x >= 0 && w.y >= 0 && w.w >= 1 && w.h >= 1 && num >= 1 && denom >= 1 && scaled_width >= 1 && scaled_height >= 1,
      fmt::format("scale_window: window {},{} {}x{} at {}/{} in {}x{}", w.x, w.y, w.w, w.h, num, denom, scaled_width,
                  scaled_height));
  // One axis: floor the start, round the length, then shift back inside the
  // image and only shrink what still does not fit.
  const auto axis = [&](int start, int len, int limit, int* out_start, int* out_len) {
    int s = int(int64_t(start) * num / denom);
    int l = std::max(1, round_int(double(len) * num / denom));
    if (s + l > limit) s = std::max(0, limit - l);
    *out_start = s;
    *out_len = std::min(l, limit - s);
  };
  CropWindow r;
  axis(w.x, w.w, scaled_width, &r.x, &r.w);
  axis(w.y, w.h, scaled_height, &r.y, &r.h);
  r.flip = w.flip;
  return r;
}

Augmenter::Augmenter(const AugmentOptions& o) : o_(o) {
  check_options(o_);
  resized_.resize(size_t(o_.out_size) * o_.out_size * 3);
}

int Augmenter::views() const { return o_.kind == AugmentKind::kTenCrop ? 10 : 1; }

CropWindow Augmenter::plan(int width, int height, int view, SampleRng& rng) const {
  RN_CHECK(width >= 1 && height >= 1 && view >= 0 && view < views(),
           fmt::format("Augmenter::plan: view {} of {} for a {}x{} image", view, views(), width, height));
  const int short_side = std::min(width, height);
  CropWindow win;
  switch (o_.kind) {
    case AugmentKind::kScale:
      win.w = win.h = square_side(o_.out_size, short_side, double(rng.between(o_.scale_min, o_.scale_max)));
      win.y = int(rng.between(0, height - win.h));
      win.x = int(rng.between(0, width - win.w));
      break;
    case AugmentKind::kInception: win = inception_window(o_, width, height, rng); break;
    case AugmentKind::kCenter:
    case AugmentKind::kTenCrop: {
      win.w = win.h = square_side(o_.out_size, short_side, o_.resize_size);
      // torchvision's five_crop order: top-left, top-right, bottom-left,
      // bottom-right, centre (kCenter's only view); views 5-9 mirror 0-4.
      const int pos = o_.kind == AugmentKind::kCenter ? 4 : view % 5;
      if (pos == 4) {
        win.x = round_int((width - win.w) / 2.0);
        win.y = round_int((height - win.h) / 2.0);
      } else {
        win.x = pos % 2 ? width - win.w : 0;
        win.y = pos / 2 ? height - win.h : 0;
      }
      win.flip = view >= 5;
      return win;
    }
    case AugmentKind::kCifar:
      if (width + 2 * o_.pad < o_.out_size || height + 2 * o_.pad < o_.out_size)
        bad(fmt::format("kind cifar needs images of at least out_size - 2 * pad = {} pixels per side, got {}x{}",
                        o_.out_size - 2 * o_.pad, width, height));
      win.w = win.h = o_.out_size;
      win.y = int(rng.between(-o_.pad, height + o_.pad - o_.out_size));
      win.x = int(rng.between(-o_.pad, width + o_.pad - o_.out_size));
      break;
  }
  win.flip = o_.flip && rng.coin();
  return win;
}

void Augmenter::render(const uint8_t* rgb, int width, int height, const CropWindow& window, SampleRng& rng,
                       float* out) {
  const cv::Rect want(window.x, window.y, window.w, window.h);
  const cv::Rect inside = want & cv::Rect(0, 0, width, height);
  RN_CHECK(
      width >= 1 && height >= 1 && window.w >= 1 && window.h >= 1 && (inside == want || o_.kind == AugmentKind::kCifar),
      fmt::format("Augmenter::render: window {},{} {}x{} is not inside the {}x{} image", window.x, window.y, window.w,
                  window.h, width, height));
  // Read only: the header only lets OpenCV see the caller's pixels.
  const cv::Mat image(height, width, CV_8UC3, const_cast<uint8_t*>(rgb));
  cv::Mat src;
  if (inside == want) {
    src = image(want);
  } else {
    // kCifar's border: the part of the window outside the image stays black.
    const size_t bytes = size_t(window.w) * window.h * 3;
    if (padded_.size() < bytes) padded_.resize(bytes);
    src = cv::Mat(window.h, window.w, CV_8UC3, padded_.data());
    src.setTo(cv::Scalar::all(0));
    if (!inside.empty()) image(inside).copyTo(src(inside - want.tl()));
  }
  const int s = o_.out_size;
  if (src.cols != s || src.rows != s) {
    cv::Mat dst(s, s, CV_8UC3, resized_.data());  // create() in resize keeps this buffer: same size and type
    // Area averaging only for large shrinks: bilinear is 3x cheaper and, below
    // a factor 2 (the usual case after scaled JPEG decoding), loses little.
    const bool large_shrink = src.cols >= 2 * s && src.rows >= 2 * s;
    cv::resize(src, dst, dst.size(), 0, 0, large_shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    src = dst;
  }

  double shift[3] = {0, 0, 0};
  if (o_.lighting_std > 0) {
    double alpha[3];
    for (double& a : alpha) a = o_.lighting_std * rng.normal();
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 3; ++i) shift[c] += kEigvec[c][i] * alpha[i] * kEigval[i];
  }
  // out = (v/255 + shift - mean) / stddev as one multiply-add per value.
  float scale[3], bias[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = float(1.0 / (255.0 * o_.stddev[c]));
    bias[c] = float((shift[c] - o_.mean[c]) / o_.stddev[c]);
  }
  const int64_t plane = int64_t(s) * s;
  const ptrdiff_t step = window.flip ? -3 : 3;
  for (int y = 0; y < s; ++y) {
    const uint8_t* p = src.ptr<uint8_t>(y) + (window.flip ? 3 * (s - 1) : 0);
    float* r = out + int64_t(y) * s;
    float* g = r + plane;
    float* b = g + plane;
    for (int x = 0; x < s; ++x, p += step) {
      r[x] = p[0] * scale[0] + bias[0];
      g[x] = p[1] * scale[1] + bias[1];
      b[x] = p[2] * scale[2] + bias[2];
    }
  }
}

}  // namespace rn::data
