// The built-in synthetic image source (data/synthetic_source.h): patterns
// are the sums of their gratings, a sample is its class pattern shifted and
// scaled (plus noise), samples are pure functions of (seed, stream, index),
// and the patterns cost rows and columns, not whole images.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "data/synthetic_source.h"

namespace rn {
namespace {

TEST(SyntheticSource, PatternIsTheSumOfItsGratings) {
  const SyntheticSource src(SyntheticOptions{7, 24, 0.5, 3});
  ASSERT_EQ(src.gratings().size(), size_t(7 * SyntheticSource::kGratings));
  double worst = 0;
  for (int k = 0; k < 7; ++k)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 24; ++y)
        for (int x = 0; x < 24; ++x) {
          double want = 0;  // the grating formula evaluated directly
          for (int g = 0; g < SyntheticSource::kGratings; ++g) {
            const Grating& gr = src.gratings()[size_t(k * SyntheticSource::kGratings + g)];
            want +=
                0.7 * gr.colour[c] * std::sin(gr.freq * (x * std::cos(gr.angle) + y * std::sin(gr.angle)) + gr.phase);
          }
          worst = std::max(worst, std::fabs(src.pattern(k, c, y, x) - want));
        }
  EXPECT_LT(worst, 1e-5);
}

TEST(SyntheticSource, ASampleIsItsClassPatternShiftedAndScaled) {
  const SyntheticSource src(SyntheticOptions{5, 20, 0.0, 9});  // no noise
  const int s = 20;
  HostBatch b;
  b.resize(6, s);
  src.fill(0, 40, b);
  for (int64_t i = 0; i < b.n; ++i) {
    SCOPED_TRACE("sample " + std::to_string(i));
    const int label = b.labels[size_t(i)];
    ASSERT_GE(label, 0);
    ASSERT_LT(label, 5);
    const float* img = b.images.data() + i * 3 * s * s;
    // Some shift within +-2 pixels (wrapping) and one contrast in [0.7, 1.3] for every pixel.
    bool found = false;
    for (int dy = -2; dy <= 2 && !found; ++dy)
      for (int dx = -2; dx <= 2 && !found; ++dx) {
        const double contrast = img[0] / src.pattern(label, 0, (dy + s) % s, (dx + s) % s);
        if (!(contrast >= 0.7 - 1e-6 && contrast <= 1.3 + 1e-6)) continue;
        double worst = 0;
        for (int c = 0; c < 3; ++c)
          for (int y = 0; y < s; ++y)
            for (int x = 0; x < s; ++x)
              worst = std::max(worst, std::fabs(img[(c * s + y) * s + x] -
                                                contrast * src.pattern(label, c, (y + dy + s) % s, (x + dx + s) % s)));
        found = worst < 1e-5;
      }
    EXPECT_TRUE(found) << "not a shifted, scaled copy of class " << label << "'s pattern";
  }
}

TEST(SyntheticSource, SamplesArePureFunctionsOfSeedStreamAndIndex) {
  const SyntheticOptions o{10, 16, 0.5, 4};
  const SyntheticSource a(o), b(o);
  HostBatch x, y, z;
  x.resize(1, 16);
  y.resize(1, 16);
  z.resize(1, 16);
  a.sample(0, 123, x, 0);
  b.sample(0, 123, y, 0);
  b.sample(1, 123, z, 0);
  EXPECT_EQ(0, std::memcmp(x.images.data(), y.images.data(), x.images.size() * sizeof(float)));
  EXPECT_EQ(x.labels, y.labels);
  EXPECT_NE(0, std::memcmp(x.images.data(), z.images.data(), x.images.size() * sizeof(float)))
      << "another stream gives another sample";
}

TEST(SyntheticSource, PatternsCostRowsAndColumnsNotWholeImages) {
  // ImageNet's shape: whole patterns were 1000 x 3 x 224 x 224 floats, 574 MiB.
  const SyntheticSource src(SyntheticOptions{1000, 224, 0.5, 1});
  EXPECT_LT(src.table_bytes(), size_t(32) << 20);
}

}  // namespace
}  // namespace rn
