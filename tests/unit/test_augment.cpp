// Image augmentation (data/augment.h): exact windows and pixels where they
// are known (coordinate-coded images), normalisation, the distributions of
// the random kinds over many SampleRng streams, determinism, scale_window
// and option checking.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "data/augment.h"
#include "trainer/core/error.h"

namespace rn::data {
namespace {

constexpr uint64_t kSeed = 20160610;

// HWC RGB image with R = x, G = y, B = (x + 2y) % 256: every pixel (up to
// 256 x 256) says where it came from.
std::vector<uint8_t> coord_image(int w, int h) {
  std::vector<uint8_t> img(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img[(size_t(y) * w + x) * 3];
      p[0] = uint8_t(x);
      p[1] = uint8_t(y);
      p[2] = uint8_t((x + 2 * y) % 256);
    }
  return img;
}

std::vector<uint8_t> constant_image(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  std::vector<uint8_t> img(size_t(w) * h * 3);
  for (size_t i = 0; i < img.size(); i += 3) {
    img[i] = r;
    img[i + 1] = g;
    img[i + 2] = b;
  }
  return img;
}

// Inverts the normalisation of channel c at (x, y) back to a pixel value.
double pixel(const std::vector<float>& out, const AugmentOptions& o, int c, int x, int y) {
  const int s = o.out_size;
  return (out[size_t(c) * s * s + size_t(y) * s + x] * double(o.stddev[c]) + o.mean[c]) * 255.0;
}

// Renders with a spare tail in the output that must stay untouched.
std::vector<float> render(Augmenter& a, const std::vector<uint8_t>& img, int w, int h, const CropWindow& win,
                          uint64_t index = 0) {
  constexpr float kSentinel = -12345.f;
  std::vector<float> out(size_t(a.output_floats()) + 16, kSentinel);
  SampleRng rng(kSeed, 1, index);
  a.render(img.data(), w, h, win, rng, out.data());
  for (size_t i = size_t(a.output_floats()); i < out.size(); ++i) EXPECT_EQ(out[i], kSentinel) << "wrote past the end";
  out.resize(size_t(a.output_floats()));
  return out;
}

CropWindow plan(const Augmenter& a, int w, int h, uint64_t index, int view = 0) {
  SampleRng rng(kSeed, 0, index);
  return a.plan(w, h, view, rng);
}

AugmentOptions opts(AugmentKind kind, int out_size) {
  AugmentOptions o;
  o.kind = kind;
  o.out_size = out_size;
  return o;
}

// Same generator state: the next draws agree.
bool same_state(SampleRng a, SampleRng b) { return a.next_u64() == b.next_u64(); }

TEST(Augment, KindNamesRoundTrip) {
  for (AugmentKind k :
       {AugmentKind::kScale, AugmentKind::kInception, AugmentKind::kCenter, AugmentKind::kTenCrop, AugmentKind::kCifar})
    EXPECT_EQ(parse_augment_kind(augment_kind_name(k), "test"), k);
  EXPECT_EQ(augment_kind_name(AugmentKind::kTenCrop), "tencrop");
  try {
    parse_augment_kind("random-crop", "data.train_augment");
    ADD_FAILURE() << "no error thrown";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    for (const char* needle : {"data.train_augment", "random-crop", "\"inception\"", "\"cifar\""})
      EXPECT_NE(msg.find(needle), std::string::npos) << "missing '" << needle << "' in: " << msg;
  }
}

TEST(Augment, BadOptionsThrowNamingTheField) {
  struct Case {
    const char* needle;
    AugmentOptions o;
  };
  std::vector<Case> cases;
  const auto add = [&](const char* needle, AugmentKind kind, auto change) {
    AugmentOptions o = opts(kind, 224);
    change(o);
    cases.push_back({needle, o});
  };
  add("out_size", AugmentKind::kCenter, [](AugmentOptions& o) { o.out_size = 0; });
  add("scale_min", AugmentKind::kCenter, [](AugmentOptions& o) { o.scale_min = 0; });
  add("scale_max = 480", AugmentKind::kScale, [](AugmentOptions& o) { o.scale_min = 500; });
  add("scale_min = 200 < out_size = 224", AugmentKind::kScale, [](AugmentOptions& o) { o.scale_min = 200; });
  add("area_min = 0 ", AugmentKind::kInception, [](AugmentOptions& o) { o.area_min = 0; });
  add("area_min = nan", AugmentKind::kInception, [](AugmentOptions& o) { o.area_min = std::nan(""); });
  add("area_max = 1.5", AugmentKind::kInception, [](AugmentOptions& o) { o.area_max = 1.5; });
  add("area_max = 0.4", AugmentKind::kInception, [](AugmentOptions& o) {
    o.area_min = 0.5;
    o.area_max = 0.4;
  });
  add("ratio_min = 0 ", AugmentKind::kInception, [](AugmentOptions& o) { o.ratio_min = 0; });
  add("ratio_max = 1", AugmentKind::kInception, [](AugmentOptions& o) {
    o.ratio_min = 2;
    o.ratio_max = 1;
  });
  add("resize_size = 200", AugmentKind::kCenter, [](AugmentOptions& o) { o.resize_size = 200; });
  add("resize_size = 200", AugmentKind::kTenCrop, [](AugmentOptions& o) { o.resize_size = 200; });
  add("pad = -1", AugmentKind::kCifar, [](AugmentOptions& o) { o.pad = -1; });
  add("lighting_std = -0.1", AugmentKind::kScale, [](AugmentOptions& o) { o.lighting_std = -0.1; });
  add("stddev[1] = 0", AugmentKind::kCenter, [](AugmentOptions& o) { o.stddev[1] = 0; });
  for (const auto& c : cases) {
    try {
      Augmenter a(c.o);
      ADD_FAILURE() << "no error for '" << c.needle << "'";
    } catch (const UserError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(c.needle), std::string::npos) << "missing '" << c.needle << "' in: " << msg;
      EXPECT_EQ(msg.rfind("augmentation: ", 0), 0u) << msg;
    }
  }
  // Fields that a kind does not use are not held against it.
  AugmentOptions inception = opts(AugmentKind::kInception, 300);
  inception.resize_size = 100;
  EXPECT_NO_THROW(Augmenter{inception});
  EXPECT_NO_THROW(Augmenter{opts(AugmentKind::kCifar, 32)});
}

TEST(Augment, CifarImageSmallerThanCropThrows) {
  AugmentOptions o = opts(AugmentKind::kCifar, 32);
  Augmenter a(o);
  SampleRng rng(kSeed);
  EXPECT_NO_THROW(a.plan(24, 24, 0, rng));
  EXPECT_THROW(a.plan(23, 32, 0, rng), UserError);
}

TEST(AugmentGeometry, CropWithoutResizeCopiesSourcePixels) {
  const int w = 20, h = 12;
  const auto img = coord_image(w, h);
  AugmentOptions o = opts(AugmentKind::kCenter, 8);
  o.resize_size = 8;
  Augmenter a(o);
  for (bool flip : {false, true}) {
    const auto out = render(a, img, w, h, CropWindow{5, 3, 8, 8, flip});
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const int sx = 5 + (flip ? 7 - x : x), sy = 3 + y;
        ASSERT_NEAR(pixel(out, o, 0, x, y), sx, 1e-3) << "flip " << flip << " at " << x << "," << y;
        ASSERT_NEAR(pixel(out, o, 1, x, y), sy, 1e-3) << "flip " << flip << " at " << x << "," << y;
        ASSERT_NEAR(pixel(out, o, 2, x, y), (sx + 2 * sy) % 256, 1e-3) << "flip " << flip << " at " << x << "," << y;
      }
  }
}

TEST(AugmentGeometry, CenterIsIdentityOnOutSizeImages) {
  const auto img = coord_image(32, 32);
  AugmentOptions o = opts(AugmentKind::kCenter, 32);
  o.resize_size = 32;
  Augmenter a(o);
  const CropWindow win = plan(a, 32, 32, 0);
  EXPECT_EQ(win, (CropWindow{0, 0, 32, 32, false}));
  const auto out = render(a, img, 32, 32, win);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        ASSERT_NEAR(pixel(out, o, c, x, y), img[(size_t(y) * 32 + x) * 3 + c], 1e-3) << c << " " << x << "," << y;
}

TEST(AugmentGeometry, CifarPaddingIsBlack) {
  const int w = 10, h = 9;
  const auto img = coord_image(w, h);
  AugmentOptions o = opts(AugmentKind::kCifar, 8);
  Augmenter a(o);
  // Reaches 4 pixels left and 2 above; a window wholly outside is all black.
  for (const CropWindow win : {CropWindow{-4, -2, 8, 8, false}, CropWindow{-4, -2, 8, 8, true},
                               CropWindow{5, 4, 8, 8, false}, CropWindow{-20, -20, 8, 8, true}}) {
    const auto out = render(a, img, w, h, win);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const int sx = win.x + (win.flip ? 7 - x : x), sy = win.y + y;
        const bool in = sx >= 0 && sx < w && sy >= 0 && sy < h;
        for (int c = 0; c < 3; ++c) {
          const int v = !in ? 0 : c == 0 ? sx : c == 1 ? sy : sx + 2 * sy;
          const float want = (v / 255.f - o.mean[c]) / o.stddev[c];
          ASSERT_NEAR(out[size_t(c) * 64 + y * 8 + x], want, 1e-5) << win.x << "," << win.y << " at " << x << "," << y;
        }
      }
  }
}

TEST(AugmentGeometry, CenterWindowExact) {
  Augmenter a(opts(AugmentKind::kCenter, 224));  // resize_size 256
  SampleRng rng(kSeed), untouched(kSeed);
  // 224 * 375 / 256 = 328.125.
  EXPECT_EQ(a.plan(500, 375, 0, rng), (CropWindow{86, 24, 328, 328, false}));
  // 224 * 380 / 256 = 332.5 rounds to even, as Python's round().
  EXPECT_EQ(a.plan(500, 380, 0, rng), (CropWindow{84, 24, 332, 332, false}));
  // Side 262 (262.5 to even); offsets round((303 - 262) / 2) = round(20.5) = 20, round(19) = 19.
  EXPECT_EQ(a.plan(303, 300, 0, rng), (CropWindow{20, 19, 262, 262, false}));
  EXPECT_TRUE(same_state(rng, untouched)) << "kCenter drew random numbers";
}

TEST(AugmentGeometry, TenCropWindowsExact) {
  Augmenter a(opts(AugmentKind::kTenCrop, 224));  // resize_size 256
  ASSERT_EQ(a.views(), 10);
  SampleRng rng(kSeed), untouched(kSeed);
  // 300 x 400: side round(224 * 300 / 256) = round(262.5) = 262.
  const CropWindow five[5] = {
      {0, 0, 262, 262}, {38, 0, 262, 262}, {0, 138, 262, 262}, {38, 138, 262, 262}, {19, 69, 262, 262}};
  for (int v = 0; v < 10; ++v) {
    CropWindow want = five[v % 5];
    want.flip = v >= 5;
    EXPECT_EQ(a.plan(300, 400, v, rng), want) << "view " << v;
  }
  EXPECT_TRUE(same_state(rng, untouched)) << "kTenCrop drew random numbers";
  EXPECT_THROW(a.plan(300, 400, 10, rng), InternalError);
  EXPECT_EQ(Augmenter(opts(AugmentKind::kCenter, 224)).views(), 1);
}

TEST(AugmentGeometry, InceptionFallsBackToClampedCentralCrop) {
  Augmenter a(opts(AugmentKind::kInception, 224));
  // No 3/4..4/3 window of >= 8% of the area fits 10 pixels: the central crop
  // with the ratio clamped (round(10 * 4/3) = 13, offsets floored).
  const CropWindow wide = plan(a, 1000, 10, 7);
  EXPECT_EQ((CropWindow{wide.x, wide.y, wide.w, wide.h}), (CropWindow{493, 0, 13, 10}));
  const CropWindow tall = plan(a, 10, 1000, 7);
  EXPECT_EQ((CropWindow{tall.x, tall.y, tall.w, tall.h}), (CropWindow{0, 493, 10, 13}));
}

TEST(AugmentResize, ShrinkAveragesAreas) {
  // Every fourth column white: bilinear sampling would see only black.
  const int n = 64;
  std::vector<uint8_t> img(size_t(n) * n * 3, 0);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; x += 4) std::fill_n(&img[(size_t(y) * n + x) * 3], 3, uint8_t(255));
  AugmentOptions o = opts(AugmentKind::kInception, 16);
  Augmenter a(o);
  const auto out = render(a, img, n, n, CropWindow{0, 0, n, n});
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) ASSERT_NEAR(pixel(out, o, c, x, y), 63.75, 0.3) << c << " " << x << "," << y;
}

TEST(AugmentResize, ShrinkByTwoOfCheckerboardIsExact) {
  const int n = 64;
  std::vector<uint8_t> img(size_t(n) * n * 3);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) std::fill_n(&img[(size_t(y) * n + x) * 3], 3, uint8_t((x + y) % 2 ? 220 : 40));
  AugmentOptions o = opts(AugmentKind::kScale, 32);
  o.scale_min = o.scale_max = 32;
  Augmenter a(o);
  const auto out = render(a, img, n, n, plan(a, n, n, 0));
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) ASSERT_NEAR(pixel(out, o, c, x, y), 130, 1e-3) << c << " " << x << "," << y;
}

TEST(AugmentResize, NonIntegerShrinkKeepsTheMean) {
  // Gradient R = 2x, G = 2y over 100 x 100 shrunk to 30: each output is an
  // area average, so the image mean (99) survives.
  const int n = 100, s = 30;
  std::vector<uint8_t> img(size_t(n) * n * 3);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      uint8_t* p = &img[(size_t(y) * n + x) * 3];
      p[0] = uint8_t(2 * x);
      p[1] = uint8_t(2 * y);
      p[2] = 99;
    }
  AugmentOptions o = opts(AugmentKind::kInception, s);
  Augmenter a(o);
  const auto out = render(a, img, n, n, CropWindow{0, 0, n, n});
  for (int c = 0; c < 3; ++c) {
    double sum = 0;
    for (int y = 0; y < s; ++y)
      for (int x = 0; x < s; ++x) sum += pixel(out, o, c, x, y);
    EXPECT_NEAR(sum / (s * s), 99.0, 0.5) << "channel " << c;
  }
  // Monotone along x in R, along y in G.
  for (int x = 1; x < s; ++x) EXPECT_GT(pixel(out, o, 0, x, 5), pixel(out, o, 0, x - 1, 5));
  for (int y = 1; y < s; ++y) EXPECT_GT(pixel(out, o, 1, 5, y), pixel(out, o, 1, 5, y - 1));
}

TEST(AugmentResize, MildShrinkIsBilinear) {
  // 3 -> 2 pixels (factor 1.5): centres sample at 0.25 and 1.75 of the row
  // 0, 100, 200: 25 and 175. Area averaging would give 33.3 and 166.7.
  std::vector<uint8_t> img(3 * 3 * 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 3; ++x) std::fill_n(&img[(size_t(y) * 3 + x) * 3], 3, uint8_t(100 * x));
  AugmentOptions o = opts(AugmentKind::kInception, 2);
  Augmenter a(o);
  const auto out = render(a, img, 3, 3, CropWindow{0, 0, 3, 3});
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(pixel(out, o, c, 0, 1), 25, 0.01);
    EXPECT_NEAR(pixel(out, o, c, 1, 1), 175, 0.01);
  }
}

TEST(AugmentResize, EnlargeInterpolatesBilinearly) {
  // Two pixels, 0 and 200, to four: half-pixel centres sample at -0.25,
  // 0.25, 0.75, 1.25 (clamped): 0, 50, 150, 200.
  std::vector<uint8_t> img = {0, 0, 0, 200, 200, 200, 0, 0, 0, 200, 200, 200};
  AugmentOptions o = opts(AugmentKind::kInception, 4);
  Augmenter a(o);
  const auto out = render(a, img, 2, 2, CropWindow{0, 0, 2, 2});
  const double want[4] = {0, 50, 150, 200};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) ASSERT_NEAR(pixel(out, o, 1, x, y), want[x], 1.0) << x << "," << y;
}

TEST(AugmentResize, ConstantColourSurvivesInceptionCrops) {
  const int w = 800, h = 600;
  const auto img = constant_image(w, h, 200, 13, 97);
  AugmentOptions o = opts(AugmentKind::kInception, 224);
  Augmenter a(o);
  for (uint64_t i = 0; i < 20; ++i) {
    const auto out = render(a, img, w, h, plan(a, w, h, i));
    for (int c = 0; c < 3; ++c) {
      const int v = c == 0 ? 200 : c == 1 ? 13 : 97;
      const double want = (v / 255.0 - o.mean[c]) / o.stddev[c];
      for (int k = 0; k < 224 * 224; ++k) ASSERT_NEAR(out[size_t(c) * 224 * 224 + k], want, 1e-6) << "sample " << i;
    }
  }
}

TEST(AugmentNormalise, ConstantImageGivesExactValuesForEveryKind) {
  const int w = 40, h = 30, s = 16;
  for (AugmentKind kind : {AugmentKind::kScale, AugmentKind::kInception, AugmentKind::kCenter, AugmentKind::kTenCrop,
                           AugmentKind::kCifar}) {
    AugmentOptions o = opts(kind, s);
    o.scale_min = 16;
    o.scale_max = 24;
    o.resize_size = 20;
    o.pad = 0;  // kCifar's border is black, not the constant
    Augmenter a(o);
    for (int v : {0, 1, 77, 128, 254, 255}) {
      // Different values per channel catch a channel mix-up.
      const uint8_t rgb[3] = {uint8_t(v), uint8_t(255 - v), uint8_t(v / 2)};
      const auto img = constant_image(w, h, rgb[0], rgb[1], rgb[2]);
      for (int view = 0; view < a.views(); ++view) {
        SampleRng rng(kSeed, 0, uint64_t(v));
        const CropWindow win = a.plan(w, h, view, rng);
        std::vector<float> out(size_t(a.output_floats()));
        a.render(img.data(), w, h, win, rng, out.data());
        for (int c = 0; c < 3; ++c) {
          const double want = (rgb[c] / 255.0 - o.mean[c]) / o.stddev[c];
          for (int k = 0; k < s * s; ++k)
            ASSERT_NEAR(out[size_t(c) * s * s + k], want, 1e-6)
                << augment_kind_name(kind) << " v " << v << " view " << view << " channel " << c;
        }
      }
    }
  }
}

TEST(AugmentStats, FlipIsAFairCoin) {
  const int n = 10000;
  for (AugmentKind kind : {AugmentKind::kScale, AugmentKind::kInception, AugmentKind::kCifar}) {
    AugmentOptions o = opts(kind, 32);
    o.scale_min = 32;
    o.scale_max = 48;
    Augmenter a(o);
    int flips = 0;
    for (int i = 0; i < n; ++i) flips += plan(a, 40, 36, uint64_t(i)).flip;
    // sd = 50: 4 sd either side.
    EXPECT_NEAR(flips, n / 2, 200) << augment_kind_name(kind);
    o.flip = false;
    Augmenter never(o);
    for (int i = 0; i < 200; ++i) ASSERT_FALSE(plan(never, 40, 36, uint64_t(i)).flip) << augment_kind_name(kind);
  }
  Augmenter center(opts(AugmentKind::kCenter, 32));
  for (int i = 0; i < 200; ++i) ASSERT_FALSE(plan(center, 40, 36, uint64_t(i)).flip);
}

TEST(AugmentStats, InceptionWindowDistribution) {
  const int w = 500, h = 375, n = 20000;
  const AugmentOptions o = opts(AugmentKind::kInception, 224);
  Augmenter a(o);
  const double area = double(w) * h;
  double sum_fraction = 0, sum_x = 0, sum_y = 0;
  int accepted = 0, placed_x = 0, placed_y = 0;
  for (int i = 0; i < n; ++i) {
    const CropWindow win = plan(a, w, h, uint64_t(i));
    ASSERT_TRUE(win.x >= 0 && win.y >= 0 && win.w >= 1 && win.h >= 1 && win.x + win.w <= w && win.y + win.h <= h)
        << win.x << "," << win.y << " " << win.w << "x" << win.h;
    // The fallback for a 4:3 image is the whole image.
    if (win == CropWindow{0, 0, w, h, win.flip}) continue;
    ++accepted;
    const double fraction = win.w * win.h / area;
    // Rounding each side by up to 1/2 pixel (sides >= 106) moves area and ratio by < 1%.
    ASSERT_GE(fraction, o.area_min * 0.985);
    ASSERT_LE(fraction, o.area_max);
    const double ratio = double(win.w) / win.h;
    ASSERT_GE(ratio, o.ratio_min * 0.985);
    ASSERT_LE(ratio, o.ratio_max * 1.015);
    sum_fraction += fraction;
    if (win.w < w) sum_x += double(win.x) / (w - win.w), ++placed_x;
    if (win.h < h) sum_y += double(win.y) / (h - win.h), ++placed_y;
  }
  // E[area fraction | the attempt fits], by midpoint integration over
  // (fraction, log ratio): the first fitting attempt has this distribution.
  double num = 0, den = 0;
  const int grid = 1000;
  for (int i = 0; i < grid; ++i)
    for (int j = 0; j < grid; ++j) {
      const double f = o.area_min + (o.area_max - o.area_min) * (i + 0.5) / grid;
      const double r = std::exp(std::log(o.ratio_min) + std::log(o.ratio_max / o.ratio_min) * (j + 0.5) / grid);
      if (std::sqrt(f * area * r) <= w && std::sqrt(f * area / r) <= h) num += f, den += 1;
    }
  ASSERT_GT(accepted, n * 9 / 10);
  // sd of the mean ~ 0.002.
  EXPECT_NEAR(sum_fraction / accepted, num / den, 0.01);
  EXPECT_NEAR(sum_x / placed_x, 0.5, 0.02);
  EXPECT_NEAR(sum_y / placed_y, 0.5, 0.02);
}

TEST(AugmentStats, ScaleShorterSideIsUniform) {
  // Shorter side 2000: side = round(224 * 2000 / S) differs for every S in
  // 256..480 (steps of >= 1.9 pixels), so each window names its S.
  const int w = 2400, h = 2000, n = 45000, out = 224;
  const AugmentOptions o = opts(AugmentKind::kScale, out);  // scale 256..480
  Augmenter a(o);
  std::map<int, int> s_of_side, count_of_s;
  for (int s = o.scale_min; s <= o.scale_max; ++s) s_of_side[int(std::nearbyint(double(out) * h / s))] = s;
  ASSERT_EQ(s_of_side.size(), size_t(o.scale_max - o.scale_min + 1));
  double sum_s = 0, sum_x = 0, sum_y = 0;
  for (int i = 0; i < n; ++i) {
    const CropWindow win = plan(a, w, h, uint64_t(i));
    ASSERT_EQ(win.w, win.h);
    ASSERT_TRUE(win.x >= 0 && win.y >= 0 && win.x + win.w <= w && win.y + win.h <= h);
    const auto it = s_of_side.find(win.w);
    ASSERT_NE(it, s_of_side.end()) << "side " << win.w << " is no S in [scale_min, scale_max]";
    ++count_of_s[it->second];
    sum_s += it->second;
    sum_x += double(win.x) / (w - win.w);
    sum_y += double(win.y) / (h - win.h);
  }
  // 200 expected per S, sd ~ 14; the mean of S: 368, sd ~ 0.3.
  ASSERT_EQ(count_of_s.size(), s_of_side.size());
  for (const auto& [s, count] : count_of_s) EXPECT_NEAR(count, n / 225, 75) << "S = " << s;
  EXPECT_NEAR(sum_s / n, 368.0, 1.5);
  EXPECT_NEAR(sum_x / n, 0.5, 0.01);
  EXPECT_NEAR(sum_y / n, 0.5, 0.01);
}

TEST(AugmentStats, CifarOffsetsCoverThePadUniformly) {
  const int n = 9000;
  Augmenter a(opts(AugmentKind::kCifar, 32));  // pad 4
  std::map<int, int> xs, ys;
  for (int i = 0; i < n; ++i) {
    const CropWindow win = plan(a, 32, 32, uint64_t(i));
    ASSERT_EQ(win.w, 32);
    ASSERT_EQ(win.h, 32);
    ++xs[win.x];
    ++ys[win.y];
  }
  for (const auto* counts : {&xs, &ys}) {
    ASSERT_EQ(counts->size(), 9u);
    EXPECT_EQ(counts->begin()->first, -4);
    EXPECT_EQ(counts->rbegin()->first, 4);
    // 1000 expected each, sd ~ 30.
    for (const auto& [offset, count] : *counts) EXPECT_NEAR(count, n / 9, 150) << "offset " << offset;
  }
  // A larger image: the window may start anywhere from -pad to size + pad - out.
  int min_x = 99, max_x = -99, min_y = 99, max_y = -99;
  for (int i = 0; i < 2000; ++i) {
    const CropWindow win = plan(a, 40, 36, uint64_t(i));
    min_x = std::min(min_x, win.x), max_x = std::max(max_x, win.x);
    min_y = std::min(min_y, win.y), max_y = std::max(max_y, win.y);
  }
  EXPECT_EQ(min_x, -4);
  EXPECT_EQ(max_x, 12);
  EXPECT_EQ(min_y, -4);
  EXPECT_EQ(max_y, 8);
}

TEST(AugmentStats, LightingShiftMatchesThePca) {
  // fb.resnet.torch's ImageNet PCA, rows R, G, B.
  const double eigval[3] = {0.2175, 0.0188, 0.0045};
  const double eigvec[3][3] = {{-0.5675, 0.7192, 0.4009}, {-0.5808, -0.0045, -0.8140}, {-0.5836, -0.6948, 0.4203}};
  const double sigma = 0.1;
  const int s = 4, n = 20000;
  AugmentOptions o = opts(AugmentKind::kCenter, s);
  o.resize_size = s;
  o.lighting_std = sigma;
  o.mean = {0, 0, 0};
  o.stddev = {1, 1, 1};
  Augmenter a(o);
  const auto img = constant_image(s, s, 128, 128, 128);
  double sum[3] = {}, cross[3][3] = {};
  for (int i = 0; i < n; ++i) {
    const auto out = render(a, img, s, s, CropWindow{0, 0, s, s}, uint64_t(i));
    double shift[3];
    for (int c = 0; c < 3; ++c) {
      shift[c] = out[size_t(c) * s * s] - 128 / 255.0;
      // One shift per image and channel.
      for (int k = 1; k < s * s; ++k) ASSERT_EQ(out[size_t(c) * s * s + k], out[size_t(c) * s * s]);
      sum[c] += shift[c];
    }
    for (int c = 0; c < 3; ++c)
      for (int d = 0; d < 3; ++d) cross[c][d] += shift[c] * shift[d];
  }
  // Cov(shift_c, shift_d) = sigma^2 sum_i eigvec[c][i] eigvec[d][i] eigval[i]^2.
  double cov[3][3];
  for (int c = 0; c < 3; ++c)
    for (int d = 0; d < 3; ++d) {
      cov[c][d] = 0;
      for (int i = 0; i < 3; ++i) cov[c][d] += sigma * sigma * eigvec[c][i] * eigvec[d][i] * eigval[i] * eigval[i];
    }
  for (int c = 0; c < 3; ++c) {
    const double sd = std::sqrt(cov[c][c]);
    EXPECT_NEAR(sum[c] / n, 0.0, 5 * sd / std::sqrt(n)) << "channel " << c;
    // The sample sd is within ~0.5% of the truth; a transposed eigvec moves G's by 24%.
    EXPECT_NEAR(std::sqrt(cross[c][c] / n), sd, 0.03 * sd) << "channel " << c;
    for (int d = 0; d < c; ++d)
      EXPECT_NEAR(cross[c][d] / n / std::sqrt(cov[c][c] * cov[d][d]), cov[c][d] / std::sqrt(cov[c][c] * cov[d][d]),
                  0.03)
          << "correlation " << c << "," << d;
  }
}

TEST(AugmentStats, LightingIsAddedBeforeNormalising) {
  const int s = 4;
  const auto img = coord_image(s, s);
  AugmentOptions o = opts(AugmentKind::kCenter, s);
  o.resize_size = s;
  o.lighting_std = 0.1;
  o.mean = {0, 0, 0};
  o.stddev = {1, 1, 1};
  Augmenter plain(o);
  o.mean = {0.5f, 0.25f, 0.125f};
  o.stddev = {0.25f, 0.5f, 2.0f};
  Augmenter normalised(o);
  const CropWindow win{0, 0, s, s};
  const auto a = render(plain, img, s, s, win, 3), b = render(normalised, img, s, s, win, 3);
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < s * s; ++k) {
      const size_t i = size_t(c) * s * s + k;
      ASSERT_NEAR(b[i], (a[i] - o.mean[c]) / o.stddev[c], 1e-5) << c << " " << k;
    }
}

TEST(AugmentDeterminism, SameKeysSameResultOtherKeysOtherWindows) {
  const int w = 120, h = 90;
  const auto img = coord_image(w, h);
  for (AugmentKind kind : {AugmentKind::kScale, AugmentKind::kInception, AugmentKind::kCifar}) {
    AugmentOptions o = opts(kind, 48);
    o.scale_min = 48;
    o.scale_max = 80;
    o.lighting_std = 0.1;
    Augmenter a(o), b(o);
    int same_index = 0, same_epoch = 0;
    for (uint64_t i = 0; i < 100; ++i) {
      SampleRng r1(kSeed, 2, i), r2(kSeed, 2, i);
      const CropWindow w1 = a.plan(w, h, 0, r1), w2 = b.plan(w, h, 0, r2);
      ASSERT_EQ(w1, w2);
      std::vector<float> o1(size_t(a.output_floats())), o2(o1.size());
      a.render(img.data(), w, h, w1, r1, o1.data());
      b.render(img.data(), w, h, w2, r2, o2.data());
      ASSERT_EQ(std::memcmp(o1.data(), o2.data(), o1.size() * sizeof(float)), 0) << augment_kind_name(kind);
      SampleRng next_index(kSeed, 2, i + 1), next_epoch(kSeed, 3, i);
      same_index += a.plan(w, h, 0, next_index) == w1;
      same_epoch += a.plan(w, h, 0, next_epoch) == w1;
    }
    // kCifar, the least varied, has 81 x 51 x 2 windows here.
    EXPECT_LE(same_index, 5) << augment_kind_name(kind);
    EXPECT_LE(same_epoch, 5) << augment_kind_name(kind);
  }
}

TEST(AugmentDeterminism, LightingDrawsOnlyWhenOn) {
  const int s = 8;
  const auto img = coord_image(s, s);
  AugmentOptions o = opts(AugmentKind::kCenter, s);
  o.resize_size = s;
  Augmenter off(o);
  o.lighting_std = 0.1;
  Augmenter on(o);
  std::vector<float> out(size_t(off.output_floats()));
  SampleRng rng(kSeed), untouched(kSeed), three_normals(kSeed);
  off.render(img.data(), s, s, CropWindow{0, 0, s, s}, rng, out.data());
  EXPECT_TRUE(same_state(rng, untouched));
  on.render(img.data(), s, s, CropWindow{0, 0, s, s}, rng, out.data());
  for (int i = 0; i < 3; ++i) three_normals.normal();
  EXPECT_TRUE(same_state(rng, three_normals));
}

TEST(AugmentScaleWindow, HandComputedCases) {
  // Halving: everything exact.
  EXPECT_EQ(scale_window(CropWindow{100, 50, 300, 200, true}, 1, 2, 250, 188), (CropWindow{50, 25, 150, 100, true}));
  // 3/8: x = floor(37.875) = 37, y = floor(19.125) = 19, w = round(112.875) = 113, h = round(75.375) = 75.
  EXPECT_EQ(scale_window(CropWindow{101, 51, 301, 201}, 3, 8, 188, 141), (CropWindow{37, 19, 113, 75}));
  // A 1-pixel window stays 1 pixel: w = max(1, round(1/8)).
  EXPECT_EQ(scale_window(CropWindow{499, 374, 1, 1}, 1, 8, 63, 47), (CropWindow{62, 46, 1, 1}));
  // Past the right/bottom edge: shifted left/up, size kept.
  // x 200 + 50 > 240 -> 190; y 150 + round(37.5) = 38 > 180 -> 142.
  EXPECT_EQ(scale_window(CropWindow{400, 300, 100, 75}, 1, 2, 240, 180), (CropWindow{190, 142, 50, 38}));
  // Larger than the image: shifted to 0, then shrunk.
  EXPECT_EQ(scale_window(CropWindow{0, 10, 500, 375}, 1, 2, 200, 150), (CropWindow{0, 0, 200, 150}));
}

TEST(AugmentScaleWindow, StaysInsideTheScaledImage) {
  SampleRng rng(kSeed);
  for (int t = 0; t < 20000; ++t) {
    const int w = int(rng.between(1, 600)), h = int(rng.between(1, 600));
    CropWindow win;
    win.w = int(rng.between(1, w));
    win.h = int(rng.between(1, h));
    win.x = int(rng.between(0, w - win.w));
    win.y = int(rng.between(0, h - win.h));
    win.flip = rng.coin();
    const int num = int(rng.between(1, 8)), denom = 8;
    const int sw = (w * num + denom - 1) / denom, sh = (h * num + denom - 1) / denom;  // TurboJPEG's sizes
    const CropWindow s = scale_window(win, num, denom, sw, sh);
    ASSERT_TRUE(s.x >= 0 && s.y >= 0 && s.w >= 1 && s.h >= 1 && s.x + s.w <= sw && s.y + s.h <= sh)
        << win.x << "," << win.y << " " << win.w << "x" << win.h << " in " << w << "x" << h << " at " << num << "/8";
    ASSERT_EQ(s.flip, win.flip);
    const double r = double(num) / denom;
    ASSERT_LE(std::abs(s.x - win.x * r), 1.5);
    ASSERT_LE(std::abs(s.y - win.y * r), 1.5);
    ASSERT_LE(std::abs(s.w - win.w * r), 1.0);
    ASSERT_LE(std::abs(s.h - win.h * r), 1.0);
  }
}

}  // namespace
}  // namespace rn::data
