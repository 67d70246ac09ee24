// A built-in labelled image source that needs no download: each class is a
// fixed pattern (a sum of oriented colour gratings drawn from the seed);
// a sample is its class pattern, randomly shifted and scaled, plus noise.
// A network can learn it, so the demo and the tests show real learning.
//
// Sample i of a stream is a pure function of (seed, stream, i): any rank,
// thread or resumed run regenerates exactly the same images.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rn {

struct SyntheticOptions {
  int classes = 10;
  int image_size = 32;
  double noise = 0.5;  // noise amplitude relative to the pattern's (about 1)
  uint64_t seed = 1;
};

// A batch in host memory: images [n, 3, size, size] plain NCHW float, labels [n].
struct HostBatch {
  int64_t n = 0;
  int image_size = 0;
  std::vector<float> images;
  std::vector<int32_t> labels;
  void resize(int64_t batch, int size);
};

// One oriented colour grating: colour[c] x sin(freq x (x cos(angle) +
// y sin(angle)) + phase) at pixel (x, y) of channel c (freq in radians per
// pixel).
struct Grating {
  double angle = 0, freq = 0, phase = 0;
  double colour[3] = {0, 0, 0};
};

class SyntheticSource {
 public:
  explicit SyntheticSource(const SyntheticOptions& o);
  // Fills batch slot `slot` with sample `index` of `stream` (0 = training,
  // 1 = validation; ranks use their own training streams).
  void sample(uint64_t stream, uint64_t index, HostBatch& batch, int64_t slot) const;
  // Samples first, first+1, ... into the whole batch.
  void fill(uint64_t stream, uint64_t first, HostBatch& batch) const;
  const SyntheticOptions& options() const { return o_; }

  // Class `label`'s pattern at channel c, row y, column x (each in
  // [0, image_size)): 0.7 x the sum of its gratings' values, summed in fp32.
  float pattern(int label, int c, int y, int x) const;
  // kGratings per class, class after class.
  static constexpr int kGratings = 3;
  const std::vector<Grating>& gratings() const { return gratings_; }
  // Bytes the source holds for its patterns.
  size_t table_bytes() const { return tables_.size() * sizeof(double) + gratings_.size() * sizeof(Grating); }

 private:
  SyntheticOptions o_;
  std::vector<Grating> gratings_;
  // Per class and grating, sin and cos of the x part and of the y part (with
  // the phase) of each grating's argument, [classes][kGratings][4][size]:
  // sin(a + b) = sin a cos b + cos a sin b evaluates a pattern from a row
  // and a column. Stored whole, the patterns of 1000 classes at 224 px
  // took 600 MB per stream.
  std::vector<double> tables_;
};

}  // namespace rn
