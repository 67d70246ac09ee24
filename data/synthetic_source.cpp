#include "data/synthetic_source.h"

#include <cmath>
#include <random>

#include "trainer/core/parallel_for.h"

namespace rn {

namespace {
// splitmix64: a counter-based generator, so sample i needs no state of i-1.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
float unit(uint64_t h) { return static_cast<float>((h >> 40) * (1.0 / 16777216.0)); }  // [0, 1)
}  // namespace

void HostBatch::resize(int64_t batch, int size) {
  n = batch;
  image_size = size;
  images.resize(static_cast<size_t>(batch) * 3 * size * size);
  labels.resize(static_cast<size_t>(batch));
}

SyntheticSource::SyntheticSource(const SyntheticOptions& o) : o_(o) {
  const int s = o.image_size;
  std::mt19937_64 rng(mix(o.seed ^ 0x5EEDull));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  gratings_.resize(static_cast<size_t>(o.classes) * kGratings);
  tables_.resize(gratings_.size() * 4 * static_cast<size_t>(s));
  for (size_t i = 0; i < gratings_.size(); ++i) {
    Grating& g = gratings_[i];
    g.angle = u(rng) * M_PI;
    g.freq = (1.0 + 3.0 * u(rng)) * 2.0 * M_PI / s;
    g.phase = u(rng) * 2 * M_PI;
    for (double& c : g.colour) c = u(rng) * 2 - 1;
    double* t = tables_.data() + i * 4 * static_cast<size_t>(s);
    const double fx = g.freq * std::cos(g.angle), fy = g.freq * std::sin(g.angle);
    for (int p = 0; p < s; ++p) {
      t[p] = std::sin(fx * p);
      t[s + p] = std::cos(fx * p);
      t[2 * s + p] = std::sin(fy * p + g.phase);
      t[3 * s + p] = std::cos(fy * p + g.phase);
    }
  }
}

float SyntheticSource::pattern(int label, int c, int y, int x) const {
  const size_t s = static_cast<size_t>(o_.image_size);
  const size_t first = static_cast<size_t>(label) * kGratings;
  float v = 0.f;
  for (size_t i = first; i < first + kGratings; ++i) {
    const double* t = tables_.data() + i * 4 * s;
    const double wave = t[x] * t[3 * s + y] + t[s + x] * t[2 * s + y];  // sin(x part + y part)
    v += static_cast<float>(gratings_[i].colour[c] * wave * 0.7);
  }
  return v;
}

void SyntheticSource::sample(uint64_t stream, uint64_t index, HostBatch& b, int64_t slot) const {
  const int s = o_.image_size;
  const uint64_t key = mix(mix(o_.seed) ^ mix(stream * 0x100000001B3ull + 17) ^ index);
  const int label = static_cast<int>(mix(key) % static_cast<uint64_t>(o_.classes));
  const int dx = static_cast<int>(mix(key + 1) % 5) - 2, dy = static_cast<int>(mix(key + 2) % 5) - 2;
  const float contrast = 0.7f + 0.6f * unit(mix(key + 3));
  const float amp = static_cast<float>(o_.noise) * 1.7320508f;  // uniform noise of std `noise`
  float* img = b.images.data() + static_cast<size_t>(slot) * 3 * s * s;
  uint64_t h = mix(key + 4);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < s; ++y)
      for (int x = 0; x < s; ++x) {
        const int sy = (y + dy + s) % s, sx = (x + dx + s) % s;
        h = mix(h);
        img[(c * s + y) * s + x] = contrast * pattern(label, c, sy, sx) + amp * (2.f * unit(h) - 1.f);
      }
  b.labels[static_cast<size_t>(slot)] = label;
}

void SyntheticSource::fill(uint64_t stream, uint64_t first, HostBatch& b) const {
  parallel_for(b.n, [&](int64_t i) { sample(stream, first + static_cast<uint64_t>(i), b, i); });
}

}  // namespace rn
