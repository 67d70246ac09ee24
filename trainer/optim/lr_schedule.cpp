#include "trainer/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace rn {

double LrSchedule::at(double epoch) const {
  if (o_.warmup_epochs > 0 && epoch < o_.warmup_epochs) {
    const double t = epoch / o_.warmup_epochs;
    return o_.base_lr * (o_.warmup_start_factor + (1.0 - o_.warmup_start_factor) * t);
  }
  if (o_.kind == "step") return o_.base_lr * std::pow(o_.gamma, std::floor(epoch / o_.step_epochs));
  if (o_.kind == "multistep") {
    const auto passed = std::count_if(o_.milestones.begin(), o_.milestones.end(), [&](double m) { return epoch >= m; });
    return o_.base_lr * std::pow(o_.gamma, static_cast<double>(passed));
  }
  if (o_.kind == "cosine") {
    const double span = std::max(1e-9, o_.total_epochs - o_.warmup_epochs);
    const double t = std::clamp((epoch - o_.warmup_epochs) / span, 0.0, 1.0);
    return o_.min_lr + 0.5 * (o_.base_lr - o_.min_lr) * (1.0 + std::cos(M_PI * t));
  }
  return o_.base_lr;  // constant
}

double scaled_lr(double lr, long long global_batch, long long base_batch) {
  return lr * static_cast<double>(global_batch) / static_cast<double>(base_batch);
}

}  // namespace rn
