// A built-in labelled image source that needs no download: each class is a
// fixed pattern (a sum of oriented colour gratings drawn from the seed);
// a sample is its class pattern, randomly shifted and scaled, plus noise.
// A network can learn it, so the demo and the tests show real learning.
//
// Sample i of a stream is a pure function of (seed, stream, i): any rank,
// thread or resumed run regenerates exactly the same images.
#pragma once

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

class SyntheticSource {
 public:
  explicit SyntheticSource(const SyntheticOptions& o);
  // Fills batch slot `slot` with sample `index` of `stream` (0 = training,
  // 1 = validation; ranks use their own training streams).
  void sample(uint64_t stream, uint64_t index, HostBatch& batch, int64_t slot) const;
  // Samples first, first+1, ... into the whole batch.
  void fill(uint64_t stream, uint64_t first, HostBatch& batch) const;
  const SyntheticOptions& options() const { return o_; }

 private:
  SyntheticOptions o_;
  std::vector<float> patterns_;  // [classes, 3, size, size]
};

}  // namespace rn
