#include "trainer/optim/loss_scaler.h"

#include <algorithm>

namespace rn {

LossScaler::LossScaler(bool enabled, double initial_scale, int window)
    : enabled_(enabled), scale_(enabled ? initial_scale : 1.0), window_(std::max(1, window)) {}

bool LossScaler::update(bool finite) {
  if (!enabled_) return true;
  if (!finite) {
    ++skipped_;
    clean_ = 0;
    scale_ = std::max(1.0, scale_ / 2);  // below 1 would only lose precision
    return false;
  }
  if (++clean_ >= window_) {
    clean_ = 0;
    scale_ = std::min(scale_ * 2,
                      16777216.0);  // 2^24: beyond it fp32 master gradients gain nothing
  }
  return true;
}

}  // namespace rn
