// The loss head and the optimizer on the CUDA backend: softmax
// cross-entropy (label smoothing, skipped samples, loss scaling) against
// the CPU backend and its queued result, the fused SGD update (momentum, Nesterov, weight decay,
// gradient scale) on a flat range, and the all-finite check of loss-scaled
// gradients. All fp32 whatever the precision, so every backend is checked
// with the fp32 tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace rn::gpu_test {
namespace {

const auto kAllPrecisions = ::testing::Values(DType::kF32, DType::kBF16, DType::kF16);

std::string dtype_param(const ::testing::TestParamInfo<DType>& info) { return dtype_name(info.param); }

class GpuLossOptim : public GpuTestWithParam<DType> {};

struct XentRun {
  LossResult r;
  HostVec dlogits;
};

XentRun run_xent(Backend& be, const HostVec& logits, const std::vector<int32_t>& labels, int64_t k, float smoothing,
                 float loss_scale) {
  const Shape s{int64_t(labels.size()), k};
  const Tensor z = upload(be, logits, s, Layout::kNC);
  Tensor dz = allocate_poisoned(be, s, Layout::kNC);
  XentRun out;
  be.softmax_cross_entropy(z, labels.data(), smoothing, dz, loss_scale);
  out.dlogits = download(be, dz);
  out.r = be.loss_result();
  return out;
}

// Against the CPU backend (the loss in double there; 1e-4 relative covers
// an fp32 log-sum-exp). The skipped sample (label -1) has a zero gradient
// row and is not in the mean; loss_scale multiplies dlogits (exactly, a
// power of two) but not the loss.
TEST_P(GpuLossOptim, SoftmaxCrossEntropyMatchesCpu) {
  Backend& be = gpu(GetParam());
  struct Case {
    std::vector<int32_t> labels;
    int64_t k;
    float smoothing, loss_scale;
  };
  for (const Case& c : {Case{{3, -1, 9, 0, 7, 7}, 10, 0.1f, 8.f}, Case{{999, 0, 500, -1}, 1000, 0.f, 1.f},
                        Case{{1, 2}, 1000, 0.2f, 1024.f}}) {
    const int64_t n = int64_t(c.labels.size());
    SCOPED_TRACE(std::to_string(n) + " x " + std::to_string(c.k) + ", smoothing " + std::to_string(c.smoothing) +
                 ", loss scale " + std::to_string(c.loss_scale));
    Rng rng(10000 + uint64_t(c.k));
    const HostVec logits = rng.vec(size_t(n * c.k), -3, 3);
    const XentRun want = run_xent(cpu(), logits, c.labels, c.k, c.smoothing, c.loss_scale);
    const XentRun got = run_xent(be, logits, c.labels, c.k, c.smoothing, c.loss_scale);
    EXPECT_NEAR(got.r.loss, want.r.loss, kF32Tol * std::fabs(want.r.loss));
    EXPECT_EQ(got.r.correct, want.r.correct);
    EXPECT_EQ(got.r.counted, want.r.counted);
    EXPECT_TRUE(near("dlogits", got.dlogits, want.dlogits, kF32Tol, Shape{n, c.k}));
    for (int64_t i = 0; i < n; ++i) {
      if (c.labels[size_t(i)] >= 0) continue;
      for (int64_t j = 0; j < c.k; ++j) {
        ASSERT_EQ(got.dlogits[size_t(i * c.k + j)], 0.f) << "skipped sample " << i << ", class " << j;
      }
    }
    // The same without loss scaling: the loss unchanged, dlogits / scale.
    const XentRun unscaled = run_xent(be, logits, c.labels, c.k, c.smoothing, 1.f);
    EXPECT_NEAR(unscaled.r.loss, got.r.loss, 1e-6 * std::fabs(got.r.loss));
    HostVec scaled = unscaled.dlogits;
    for (auto& v : scaled) v *= c.loss_scale;
    EXPECT_TRUE(near("dlogits x loss_scale", got.dlogits, scaled, 1e-6, Shape{n, c.k}));
  }
  // A batch of only skipped samples: no loss, no gradient, nothing counted.
  const XentRun none = run_xent(be, HostVec(2 * 10, 1.f), {-1, -1}, 10, 0.1f, 8.f);
  EXPECT_EQ(none.r.loss, 0.0);
  EXPECT_EQ(none.r.counted, 0);
  EXPECT_EQ(none.r.correct, 0);
  EXPECT_TRUE(near("dlogits of skipped samples", none.dlogits, HostVec(20, 0.f), 0));
}

// softmax_cross_entropy only queues the loss; loss_result() must wait for
// that very loss. Queued behind a second of fills (the GPU far behind the
// host), a loss_result() that did not wait would return the previous
// call's result, which differs: labels all arg-max (every sample a hit)
// and then all off by one (no hit, a larger loss). The host labels are
// overwritten right after the call, while the GPU has not yet reached the
// loss: they must have been staged during the call.
TEST_P(GpuLossOptim, LossResultIsTheLastQueuedLoss) {
  Backend& be = gpu(GetParam());
  const int64_t n = 64, k = 10;
  Rng rng(10500);
  const HostVec logits = rng.vec(size_t(n * k), -3, 3);
  std::vector<int32_t> hit(static_cast<size_t>(n)), miss(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto row = logits.begin() + i * k;
    hit[size_t(i)] = int32_t(std::max_element(row, row + k) - row);
    miss[size_t(i)] = (hit[size_t(i)] + 1) % int32_t(k);
  }
  const Shape s{n, k};
  const Tensor z = upload(be, logits, s, Layout::kNC);
  Tensor dz = be.allocate(s, Layout::kNC);
  be.softmax_cross_entropy(z, hit.data(), 0.f, dz);
  const LossResult first = be.loss_result();
  EXPECT_EQ(first.correct, n);
  EXPECT_EQ(first.counted, n);

  const XentRun want = run_xent(cpu(), logits, miss, k, 0.f, 1.f);
  Tensor big = be.allocate(Shape{int64_t(1) << 28}, Layout::kNC);  // 1 GiB: ~0.3 ms a fill on an H100
  for (int i = 0; i < 3000; ++i) be.fill(big, float(i));
  be.softmax_cross_entropy(z, miss.data(), 0.f, dz);
  miss = hit;  // the GPU is still filling: the call must have staged the labels
  const LossResult second = be.loss_result();
  EXPECT_EQ(second.correct, 0) << "the result of the earlier loss, or of labels changed after the call";
  EXPECT_EQ(second.counted, n);
  EXPECT_NEAR(second.loss, want.r.loss, kF32Tol * std::fabs(want.r.loss));
  // Work queued after the loss does not change its result.
  be.fill(dz, 0.f);
  EXPECT_EQ(be.loss_result().correct, 0);
  EXPECT_EQ(be.loss_result().loss, second.loss);
}

// sgd_step on a window in the middle of a larger buffer (the optimizer
// updates runs of the flat parameter buffer): the window against the CPU
// backend, and the elements around it untouched.
TEST_P(GpuLossOptim, SgdStepMatchesCpu) {
  Backend& be = gpu(GetParam());
  const int64_t n = 10007;
  const Shape whole{3 * n}, window{n};
  Rng rng(11000);
  const HostVec p0 = rng.vec(size_t(3 * n)), g0 = rng.vec(size_t(3 * n), -5, 5), v0 = rng.vec(size_t(3 * n));
  for (const bool nesterov : {false, true}) {
    SCOPED_TRACE(nesterov ? "nesterov" : "momentum");
    HostVec p[2], v[2];
    Backend* bes[2] = {&cpu(), &be};
    for (int i = 0; i < 2; ++i) {
      Tensor pt = upload(*bes[i], p0, whole, Layout::kNC), gt = upload(*bes[i], g0, whole, Layout::kNC);
      Tensor vt = upload(*bes[i], v0, whole, Layout::kNC);
      Tensor pw = pt.slice(size_t(n), window, Layout::kNC), vw = vt.slice(size_t(n), window, Layout::kNC);
      const Tensor gw = gt.slice(size_t(n), window, Layout::kNC);
      // Two steps: the second starts from a non-zero velocity it wrote itself.
      for (int step = 0; step < 2; ++step)
        bes[i]->sgd_step(pw, gw, vw, 0.1f, 0.9f, 0.01f, nesterov,
                         /*grad_scale=*/0.125f);
      p[i] = download(*bes[i], pt);
      v[i] = download(*bes[i], vt);
    }
    EXPECT_TRUE(near("sgd params", p[1], p[0], kF32Tol, whole));
    EXPECT_TRUE(near("sgd velocity", v[1], v[0], kF32Tol, whole));
    for (int64_t i = 0; i < 3 * n; ++i) {
      if (i >= n && i < 2 * n) continue;
      ASSERT_EQ(p[1][size_t(i)], p0[size_t(i)]) << "param outside the window changed at " << i;
      ASSERT_EQ(v[1][size_t(i)], v0[size_t(i)]) << "velocity outside the window changed at " << i;
    }
  }
}

// all_finite over more elements than one block, with one bad value at the
// start, in the middle or at the end; the largest finite float is finite; a
// bad value just outside a window does not count.
TEST_P(GpuLossOptim, AllFinite) {
  Backend& be = gpu(GetParam());
  const int64_t n = (int64_t(1) << 20) + 3;
  const Shape s{n};
  Rng rng(12000);
  HostVec x = rng.vec(size_t(n), -1e3, 1e3);
  Tensor t = upload(be, x, s, Layout::kNC);
  EXPECT_TRUE(be.all_finite(t)) << "random finite data";
  be.fill(t, 0.f);
  EXPECT_TRUE(be.all_finite(t)) << "zeros";
  x[7] = std::numeric_limits<float>::max();
  x[8] = -std::numeric_limits<float>::max();
  set(be, t, x);
  EXPECT_TRUE(be.all_finite(t)) << "+-FLT_MAX";
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  struct Bad {
    size_t at;
    float value;
    const char* what;
  };
  for (const Bad b : {Bad{size_t(n - 1), nan, "NaN at the end"}, Bad{0, inf, "+inf at the start"},
                      Bad{size_t(n / 2), -inf, "-inf in the middle"}, Bad{size_t(n / 3), nan, "NaN in the middle"}}) {
    HostVec y = x;
    y[b.at] = b.value;
    set(be, t, y);
    EXPECT_FALSE(be.all_finite(t)) << b.what;
  }
  // The window [1, n - 1) of a tensor with NaNs at 0 and n - 1.
  HostVec y = x;
  y[0] = nan;
  y[size_t(n - 1)] = nan;
  set(be, t, y);
  EXPECT_TRUE(be.all_finite(t.slice(1, Shape{n - 2}, Layout::kNC))) << "NaNs outside the window";
  // A second call after a failing one starts clean.
  set(be, t, x);
  EXPECT_TRUE(be.all_finite(t)) << "after a non-finite tensor";
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuLossOptim, kAllPrecisions, dtype_param);

}  // namespace
}  // namespace rn::gpu_test
