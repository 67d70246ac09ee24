// Dynamic loss scaling for fp16 training (Micikevicius et al. 2018).
//
// fp16 gradients underflow below 2^-24; multiplying the loss by a large
// power of two S keeps them representable. The optimizer then uses the
// gradients times 1/S. A step whose gradients overflowed (a non-finite
// element after the all-reduce, which every rank sees identically) is
// skipped and S halves; after `window` clean steps in a row S doubles.
// With bf16 or fp32 (enabled = false) the scale is 1 and no step is skipped.
#pragma once

#include <cstdint>

namespace rn {

class LossScaler {
 public:
  LossScaler(bool enabled, double initial_scale, int window);
  bool enabled() const { return enabled_; }
  // The factor for the loss gradient this step (1 when disabled).
  float scale() const { return float(scale_); }
  // After backward: finite = every gradient is finite. Returns whether the
  // optimizer should apply this step, and adjusts the scale.
  bool update(bool finite);
  // Steps skipped since the start of this run.
  int64_t skipped() const { return skipped_; }

 private:
  bool enabled_;
  double scale_;
  int window_;
  int clean_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace rn
