// Learning rate as a function of progress (in epochs, fractional), so the
// same schedule holds whatever the batch size or number of ranks:
// linear warm-up, then constant, step (x gamma every step_epochs),
// multi-step (x gamma at each milestone) or cosine decay to min_lr.
#pragma once

#include <string>
#include <vector>

namespace rn {

struct LrScheduleOptions {
  double base_lr = 0.1;  // after the linear scaling rule, if any
  std::string kind = "multistep";
  std::vector<double> milestones;  // epochs
  double step_epochs = 30;
  double gamma = 0.1;
  double min_lr = 0;
  double total_epochs = 90;  // cosine horizon
  double warmup_epochs = 0;
  double warmup_start_factor = 0.1;
};

class LrSchedule {
 public:
  explicit LrSchedule(LrScheduleOptions o) : o_(std::move(o)) {}
  double at(double epoch) const;

 private:
  LrScheduleOptions o_;
};

// The linear scaling rule (Goyal et al. 2017): lr * global_batch / base_batch.
double scaled_lr(double lr, long long global_batch, long long base_batch);

}  // namespace rn
