#include "data/train_progress.h"

#include <algorithm>
#include <cmath>

#include "trainer/core/error.h"

namespace rn::data {

namespace {

void check_sizes(int64_t epoch_size, int64_t global_batch) {
  RN_CHECK(global_batch >= 1 && epoch_size >= global_batch, "training epoch smaller than one global batch");
}

}  // namespace

bool valid_train_cursor(DataCursor c, int64_t epoch_size, int64_t global_batch) {
  return global_batch >= 1 && c.epoch >= 0 && c.sample >= 0 && c.sample <= epoch_size - global_batch;
}

DataCursor normalize_train_cursor(DataCursor c, int64_t epoch_size, int64_t global_batch) {
  check_sizes(epoch_size, global_batch);
  if (c.epoch >= 0 && c.sample >= 0 && c.sample <= epoch_size && epoch_size - c.sample < global_batch)
    return {c.epoch + 1, 0};
  return c;
}

DataCursor advance_train(DataCursor c, int64_t epoch_size, int64_t global_batch) {
  check_sizes(epoch_size, global_batch);
  RN_CHECK(valid_train_cursor(c, epoch_size, global_batch), "advance_train from an invalid cursor");
  c.sample += global_batch;
  if (epoch_size - c.sample < global_batch) c = {c.epoch + 1, 0};
  return c;
}

int64_t train_batches_left(DataCursor c, int64_t epoch_size, int64_t global_batch) {
  check_sizes(epoch_size, global_batch);
  RN_CHECK(c.sample >= 0, "negative cursor sample");
  return c.sample >= epoch_size ? 0 : (epoch_size - c.sample) / global_batch;
}

int64_t train_steps_until(DataCursor c, double epochs, int64_t epoch_size, int64_t global_batch) {
  check_sizes(epoch_size, global_batch);
  RN_CHECK(c.epoch >= 0 && c.sample >= 0, "invalid training cursor");
  if (!(epochs > 0)) return 0;
  const int64_t per_epoch = epoch_size / global_batch;  // steps in a whole epoch
  const int64_t whole = int64_t(std::floor(epochs));
  if (c.epoch > whole) return 0;
  int64_t steps = 0, from = c.sample;
  if (c.epoch < whole) {
    steps = train_batches_left(c, epoch_size, global_batch) + (whole - c.epoch - 1) * per_epoch;
    from = 0;
  }
  // In epoch `whole` the target is frac * used samples = frac * per_epoch
  // steps from its start, computed as epochs * per_epoch - whole * per_epoch
  // (the subtraction is exact) so that from {0, 0} the total is exactly
  // ceil(epochs * per_epoch), the step count of a run that never resumes.
  // The epoch may end first (its last start can be short of the target when
  // `from` is not a multiple of G): then epoch whole + 1 is past the target.
  const double target = epochs * double(per_epoch) - double(whole * per_epoch);
  const double left = std::ceil(target - double(from) / double(global_batch));
  if (left > 0) steps += std::min(int64_t(left), train_batches_left({whole, from}, epoch_size, global_batch));
  return steps;
}

double epoch_position(DataCursor c, int64_t epoch_size, int64_t global_batch) {
  check_sizes(epoch_size, global_batch);
  const int64_t used = epoch_size / global_batch * global_batch;
  return double(c.epoch) + double(c.sample) / double(used);
}

}  // namespace rn::data
