// Softmax cross-entropy on the host (logits are small: N x classes).
#include <algorithm>
#include <cmath>

#include "trainer/backend/cpu/cpu_backend.h"

namespace rn {

void CpuBackend::softmax_cross_entropy(const Tensor& logits, const int32_t* labels, float smoothing, Tensor& dlogits,
                                       float loss_scale) {
  loss_.reset();  // a call that throws leaves no stale result behind
  RN_CHECK(logits.shape().rank() == 2 && logits.shape() == dlogits.shape(), "loss shapes " + logits.shape().str());
  const int64_t n = logits.shape()[0], k = logits.shape()[1];
  const float* z = logits.data();
  float* dz = dlogits.data();
  double total = 0;
  int64_t correct = 0, counted = 0;
  for (int64_t i = 0; i < n; ++i) counted += labels[i] >= 0;
  // Sequential over samples in a fixed order: the loss is bit-reproducible.
  for (int64_t i = 0; i < n; ++i) {
    const float* zi = z + i * k;
    const int32_t label = labels[i];
    if (label < 0) {  // a skipped sample: no loss, no gradient
      std::fill_n(dz + i * k, k, 0.f);
      continue;
    }
    RN_CHECK(label < k, "label " + std::to_string(label) + " outside [0, " + std::to_string(k) + ")");
    int64_t arg = 0;
    for (int64_t j = 1; j < k; ++j) if (zi[j] > zi[arg]) arg = j;
    correct += arg == label;
    const double zmax = zi[arg];
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += std::exp(double(zi[j]) - zmax);
    const double log_sum = std::log(sum) + zmax;
    double loss = 0;
    for (int64_t j = 0; j < k; ++j) {
      const double target = (j == label ? 1.0 - smoothing : 0.0) + smoothing / double(k);
      const double logp = double(zi[j]) - log_sum;
      loss -= target * logp;
      dz[i * k + j] = static_cast<float>(double(loss_scale) * (std::exp(logp) - target) / double(counted));
    }
    total += loss;
  }
  loss_ = LossResult{counted ? total / double(counted) : 0.0, correct, counted};
}

LossResult CpuBackend::loss_result() {
  RN_CHECK(loss_.has_value(), "loss_result() without a softmax_cross_entropy that succeeded");
  return *loss_;
}

}  // namespace rn
