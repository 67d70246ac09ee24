// A small counter-based random generator for the data pipeline.
//
// Every random decision about a sample (crop, flip, lighting) comes from a
// SampleRng seeded by (seed, epoch, sample index), so a sample's
// augmentation does not depend on which thread handled it or on what came
// before it: runs are reproducible, and a resumed run only needs the
// loader's cursor (epoch, position), not generator state.
//
// The algorithms are fixed here (SplitMix64, 53-bit doubles, Box-Muller),
// unlike std:: distributions, whose outputs differ between standard
// libraries.
#pragma once

#include <cmath>
#include <cstdint>

namespace rn::data {

class SampleRng {
 public:
  explicit SampleRng(uint64_t seed) : state_(seed) {}
  // The generator of one sample: mixes the three keys so that neighbouring
  // indices or epochs give unrelated streams.
  SampleRng(uint64_t seed, uint64_t epoch, uint64_t index)
      : state_(mix(mix(mix(seed) ^ (epoch + 0x632be59bd9b4e019ULL)) ^ (index + 0x9e3779b97f4a7c15ULL))) {}

  uint64_t next_u64() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix(state_);
  }
  // Uniform in [0, 1).
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform in [a, b).
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  // Uniform integer in [0, n), n >= 1 (rejection sampling: no modulo bias).
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next_u64();
    while (x >= limit);
    return x % n;
  }
  // Uniform integer in [a, b] (inclusive), a <= b.
  int64_t between(int64_t a, int64_t b) { return a + int64_t(below(uint64_t(b - a) + 1)); }
  bool coin() { return (next_u64() >> 63) != 0; }
  // Standard normal (Box-Muller; one value per call, no cached state).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  // SplitMix64's finaliser (Steele, Lea, Flood 2014).
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace rn::data
