// Tests of the double-precision reference layers and the finite-difference
// harness (tests/reference): they are the oracles of the layer gradient
// checks, so they are checked here against hand-computed values and against
// independent formulations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>

#include "tests/reference/finite_diff.h"
#include "tests/reference/ref_ops.h"

namespace rn::ref {
namespace {

void expect_vec_near(const Vec& actual, const Vec& expected, double tol) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) EXPECT_NEAR(actual[i], expected[i], tol) << "at index " << i;
}

Vec iota_vec(std::size_t n, double start = 1.0) {
  Vec v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i);
  return v;
}

// Noise floor of central differences with h = 1e-6 on the double reference:
// |error| ~ 1e-16 * sum_i |r_i y_i| / h, i.e. 1e-10 .. 1e-8 absolute at these
// sizes; with compare()'s floor of 1e-3 that is at most ~1e-6 relative. A
// wrong gradient is off by far more than this.
constexpr double kFdRelTol = 1e-5;

bool is_float(double v) { return static_cast<double>(static_cast<float>(v)) == v; }

// ---------------------------------------------------------------------------
// Convolution

TEST(RefConv, HandComputed3x3InputWith2x2Kernel) {
  // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]], stride 1, pad 0.
  // Cross-correlation (no flip): y00 = 1*1 + 2*2 + 4*3 + 5*4 = 37, etc.
  const Vec x = iota_vec(9);
  const Vec w = {1, 2, 3, 4};
  const Vec y = conv2d_forward(x, 1, 1, 3, 3, w, 1, 2, 1, 0);
  expect_vec_near(y, {37, 47, 67, 77}, 0.0);
}

TEST(RefConv, HandComputedStride2Pad1) {
  // Same x and w; with pad 1, stride 2 the 2x2 windows start at -1 and 1:
  // y00 = x00*w11 = 4; y01 = x01*w10 + x02*w11 = 6 + 12 = 18;
  // y10 = x10*w01 + x20*w11 = 8 + 28 = 36; y11 = 5 + 12 + 24 + 36 = 77.
  const Vec y = conv2d_forward(iota_vec(9), 1, 1, 3, 3, {1, 2, 3, 4}, 1, 2, 2, 1);
  expect_vec_near(y, {4, 18, 36, 77}, 0.0);
}

TEST(RefConv, OutputShapes) {
  EXPECT_EQ(conv_out_size(7, 3, 2, 1), 4);  // (7 + 2 - 3) / 2 + 1
  EXPECT_EQ(conv_out_size(6, 3, 2, 1), 3);  // (6 + 2 - 3) / 2 + 1, floor
  EXPECT_EQ(conv_out_size(7, 3, 1, 1), 7);
  EXPECT_EQ(conv_out_size(32, 3, 2, 1), 16);
  EXPECT_EQ(conv_out_size(224, 7, 2, 3), 112);
  EXPECT_EQ(conv_out_size(7, 1, 2, 0), 4);
  const int N = 3, Ci = 5, H = 7, W = 6, Co = 2, K = 3;
  const Vec x = random_uniform(N * Ci * H * W, 1);
  const Vec w = random_uniform(Co * Ci * K * K, 2);
  EXPECT_EQ(conv2d_forward(x, N, Ci, H, W, w, Co, K, 2, 1).size(), static_cast<std::size_t>(N * Co * 4 * 3));
  EXPECT_EQ(conv2d_forward(x, N, Ci, H, W, w, Co, K, 1, 0).size(), static_cast<std::size_t>(N * Co * 5 * 4));
}

TEST(RefConv, RejectsBadShapes) {
  EXPECT_THROW(conv2d_forward(Vec(8), 1, 1, 3, 3, Vec(4), 1, 2, 1, 0), std::invalid_argument);
  EXPECT_THROW(conv2d_forward(Vec(9), 1, 1, 3, 3, Vec(3), 1, 2, 1, 0), std::invalid_argument);
  EXPECT_THROW(conv_out_size(2, 5, 1, 1), std::invalid_argument);
  EXPECT_THROW(conv_out_size(7, 3, 0, 1), std::invalid_argument);
}

TEST(RefConv, PointwiseConvIsLinearPerPixel) {
  // A 1x1 convolution is a fully connected layer applied at each pixel.
  const int N = 2, Ci = 3, H = 3, W = 2, Co = 4;
  const Vec x = random_uniform(N * Ci * H * W, 11);
  const Vec w = random_uniform(Co * Ci, 12);
  const Vec y = conv2d_forward(x, N, Ci, H, W, w, Co, 1, 1, 0);
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < H; ++h)
      for (int ww = 0; ww < W; ++ww) {
        Vec pix(Ci);
        for (int c = 0; c < Ci; ++c) pix[c] = x[idx4(n, c, h, ww, Ci, H, W)];
        const Vec out = linear_forward(pix, 1, Ci, w, Co, Vec(Co, 0.0));
        for (int o = 0; o < Co; ++o) EXPECT_NEAR(y[idx4(n, o, h, ww, Co, H, W)], out[o], 1e-14);
      }
}

TEST(RefConv, FullSizeKernelIsLinearOnFlattenedInput) {
  // K = H = W, no padding: one output pixel = dot(w[co], x[n]) over (ci,kh,kw).
  const int N = 3, Ci = 2, S = 3, Co = 5;
  const Vec x = random_uniform(N * Ci * S * S, 21);
  const Vec w = random_uniform(Co * Ci * S * S, 22);
  const Vec y = conv2d_forward(x, N, Ci, S, S, w, Co, S, 1, 0);
  expect_vec_near(y, linear_forward(x, N, Ci * S * S, w, Co, Vec(Co, 0.0)), 1e-14);
}

TEST(RefConv, FiniteDifferencesMatchHandDerivedGradients) {
  // dL/dw[co,ci,kh,kw] = sum_{n,oh,ow} r[n,co,oh,ow] * x[n,ci,oh*s-p+kh,ow*s-p+kw]
  // dL/dx[n,ci,ih,iw]  = sum of r[n,co,oh,ow] * w[co,ci,kh,kw] over taps hitting (ih,iw)
  const int N = 2, Ci = 3, H = 5, W = 4, Co = 2, K = 3, s = 2, p = 1;
  const int Ho = conv_out_size(H, K, s, p), Wo = conv_out_size(W, K, s, p);
  const Vec x = random_uniform(N * Ci * H * W, 31);
  const Vec w = random_uniform(Co * Ci * K * K, 32);
  const Vec r = random_uniform(N * Co * Ho * Wo, 33);
  Vec dw(w.size(), 0.0), dx(x.size(), 0.0);
  for (int n = 0; n < N; ++n)
    for (int co = 0; co < Co; ++co)
      for (int oh = 0; oh < Ho; ++oh)
        for (int ow = 0; ow < Wo; ++ow)
          for (int ci = 0; ci < Ci; ++ci)
            for (int kh = 0; kh < K; ++kh)
              for (int kw = 0; kw < K; ++kw) {
                const int ih = oh * s - p + kh, iw = ow * s - p + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const double rv = r[idx4(n, co, oh, ow, Co, Ho, Wo)];
                dw[idx4(co, ci, kh, kw, Ci, K, K)] += rv * x[idx4(n, ci, ih, iw, Ci, H, W)];
                dx[idx4(n, ci, ih, iw, Ci, H, W)] += rv * w[idx4(co, ci, kh, kw, Ci, K, K)];
              }
  const Vec fd_w =
      numeric_grad([&](const Vec& t) { return projected(conv2d_forward(x, N, Ci, H, W, t, Co, K, s, p), r); }, w);
  const Vec fd_x =
      numeric_grad([&](const Vec& t) { return projected(conv2d_forward(t, N, Ci, H, W, w, Co, K, s, p), r); }, x);
  const Comparison cw = compare(fd_w, dw), cx = compare(fd_x, dx);
  EXPECT_LT(cw.max_rel_err, kFdRelTol) << cw.str({Co, Ci, K, K});
  EXPECT_LT(cx.max_rel_err, kFdRelTol) << cx.str({N, Ci, H, W});
}

// ---------------------------------------------------------------------------
// Batch normalisation

TEST(RefBatchNorm, NormalisedOutputHasZeroMeanUnitVariancePerChannel) {
  const int N = 3, C = 5, H = 7, W = 6;
  Vec x = random_uniform(N * C * H * W, 41);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 3.0 * x[i] + static_cast<double>(i % 7);  // non-trivial stats
  const BnTrainResult r = batchnorm_train_forward(x, N, C, H, W, Vec(C, 1.0), Vec(C, 0.0), 0.0);
  for (int c = 0; c < C; ++c) {
    double sum = 0, sq = 0;
    for (int n = 0; n < N; ++n)
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) sum += r.y[idx4(n, c, h, w, C, H, W)];
    const double mean = sum / (N * H * W);
    for (int n = 0; n < N; ++n)
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) sq += std::pow(r.y[idx4(n, c, h, w, C, H, W)] - mean, 2);
    EXPECT_NEAR(mean, 0.0, 1e-12) << "channel " << c;
    EXPECT_NEAR(sq / (N * H * W), 1.0, 1e-12) << "channel " << c;
    EXPECT_NEAR(r.var_unbiased[c], r.var[c] * (N * H * W) / (N * H * W - 1.0), 1e-12);
  }
}

TEST(RefBatchNorm, AffineAndEpsilon) {
  // With gamma, beta: per-channel mean beta, variance gamma^2 * v / (v + eps).
  const int N = 2, C = 3, H = 3, W = 3;
  const Vec x = random_uniform(N * C * H * W, 42);
  const Vec gamma = {0.5, -2.0, 1.5}, beta = {0.25, 1.0, -0.75};
  const double eps = 0.1;
  const BnTrainResult r = batchnorm_train_forward(x, N, C, H, W, gamma, beta, eps);
  const BnTrainResult s = batchnorm_train_forward(r.y, N, C, H, W, Vec(C, 1.0), Vec(C, 0.0), 0.0);
  for (int c = 0; c < C; ++c) {
    EXPECT_NEAR(s.mean[c], beta[c], 1e-12);
    EXPECT_NEAR(s.var[c], gamma[c] * gamma[c] * r.var[c] / (r.var[c] + eps), 1e-12);
  }
}

TEST(RefBatchNorm, HandComputedTrainForward) {
  // One channel, x = 1,2,3,4: mean 2.5, biased var 1.25, unbiased var 5/3.
  // y = 2 * (x - 2.5) / sqrt(1.25) + 1.
  const Vec x = {1, 2, 3, 4};
  const BnTrainResult r = batchnorm_train_forward(x, 1, 1, 2, 2, {2.0}, {1.0}, 0.0);
  EXPECT_DOUBLE_EQ(r.mean[0], 2.5);
  EXPECT_DOUBLE_EQ(r.var[0], 1.25);
  EXPECT_DOUBLE_EQ(r.var_unbiased[0], 5.0 / 3.0);
  expect_vec_near(r.y, {-1.6832815729997477, 0.10557280900008414, 1.8944271909999157, 3.6832815729997477}, 1e-14);
  const BnTrainResult rr = batchnorm_train_forward(x, 1, 1, 2, 2, {2.0}, {1.0}, 0.0, /*relu=*/true);
  expect_vec_near(rr.y, {0.0, 0.10557280900008414, 1.8944271909999157, 3.6832815729997477}, 1e-14);
}

TEST(RefBatchNorm, HandComputedEvalForward) {
  // Channel 0: (x - 1) / sqrt(3 + 1) * 2 + 0.5 = x - 0.5.
  // Channel 1: (x - 0) / sqrt(0 + 1) * -1 + 0 = -x.  N = 2 interleaves channels.
  const Vec x = {1, 2, 3, 4, /*c1*/ 5, 6, 7, 8, /*n1 c0*/ -1, 0, 1, 2, /*n1 c1*/ -2, 0, 2, 4};
  const Vec y = batchnorm_eval_forward(x, 2, 2, 2, 2, {2.0, -1.0}, {0.5, 0.0}, {1.0, 0.0}, {3.0, 0.0}, 1.0);
  expect_vec_near(y, {0.5, 1.5, 2.5, 3.5, -5, -6, -7, -8, -1.5, -0.5, 0.5, 1.5, 2, 0, -2, -4}, 1e-15);
  const Vec yr =
      batchnorm_eval_forward(x, 2, 2, 2, 2, {2.0, -1.0}, {0.5, 0.0}, {1.0, 0.0}, {3.0, 0.0}, 1.0, /*relu=*/true);
  expect_vec_near(yr, {0.5, 1.5, 2.5, 3.5, 0, 0, 0, 0, 0, 0, 0.5, 1.5, 2, 0, 0, 0}, 1e-15);
}

TEST(RefBatchNorm, EvalWithBatchStatisticsEqualsTrain) {
  const int N = 3, C = 4, H = 3, W = 2;
  const Vec x = random_uniform(N * C * H * W, 43);
  const Vec g = random_uniform(C, 44), b = random_uniform(C, 45);
  const BnTrainResult r = batchnorm_train_forward(x, N, C, H, W, g, b, 1e-5, true);
  expect_vec_near(batchnorm_eval_forward(x, N, C, H, W, g, b, r.mean, r.var, 1e-5, true), r.y, 1e-15);
}

TEST(RefBatchNorm, RunningUpdateIsPyTorchs) {
  const BnTrainResult r = batchnorm_train_forward({1, 2, 3, 4}, 1, 1, 2, 2, {1.0}, {0.0}, 1e-5);
  Vec rm = {0.0}, rv = {1.0};
  batchnorm_update_running(rm, rv, r, 0.1);
  EXPECT_DOUBLE_EQ(rm[0], 0.25);                     // 0.9 * 0 + 0.1 * 2.5
  EXPECT_DOUBLE_EQ(rv[0], 0.9 + 0.1 * 5.0 / 3.0);  // unbiased variance
}

TEST(RefBatchNorm, RejectsOneValuePerChannelInTraining) {
  EXPECT_THROW(batchnorm_train_forward({1.0, 2.0}, 1, 2, 1, 1, {1, 1}, {0, 0}, 1e-5), std::invalid_argument);
  EXPECT_THROW(batchnorm_train_forward(Vec(8), 1, 2, 2, 2, {1}, {0, 0}, 1e-5), std::invalid_argument);
}

TEST(RefBatchNorm, FiniteDifferencesMatchAnalyticBackward) {
  // Textbook BN backward: dbeta = sum dy, dgamma = sum dy * xhat,
  // dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat)) (per channel).
  // With the fused ReLU, dy is masked by (pre-activation > 0) first.
  const int N = 3, C = 5, H = 7, W = 6, M = N * H * W;
  const double eps = 1e-5;
  for (bool relu : {false, true}) {
    SCOPED_TRACE(relu ? "bn+relu" : "bn");
    Vec x = random_uniform(N * C * H * W, 51);
    const Vec g = random_uniform(C, 52, 0.5, 1.5), b = random_uniform(C, 53, -0.5, 0.5);
    const Vec r = random_uniform(x.size(), 54);
    if (relu) {
      ASSERT_TRUE(nudge_bn_relu_train_inputs(x, N, C, H, W, g, b, eps));
    }
    const BnTrainResult st = batchnorm_train_forward(x, N, C, H, W, g, b, eps, false);
    Vec dx(x.size()), dg(C, 0.0), db(C, 0.0);
    for (int c = 0; c < C; ++c) {
      const double inv = 1.0 / std::sqrt(st.var[c] + eps);
      double mdy = 0, mdyx = 0;
      auto dy_at = [&](std::size_t i) { return (!relu || st.y[i] > 0.0) ? r[i] : 0.0; };
      for (int n = 0; n < N; ++n)
        for (int h = 0; h < H; ++h)
          for (int w = 0; w < W; ++w) {
            const std::size_t i = idx4(n, c, h, w, C, H, W);
            const double xhat = (x[i] - st.mean[c]) * inv;
            mdy += dy_at(i) / M;
            mdyx += dy_at(i) * xhat / M;
            db[c] += dy_at(i);
            dg[c] += dy_at(i) * xhat;
          }
      for (int n = 0; n < N; ++n)
        for (int h = 0; h < H; ++h)
          for (int w = 0; w < W; ++w) {
            const std::size_t i = idx4(n, c, h, w, C, H, W);
            const double xhat = (x[i] - st.mean[c]) * inv;
            dx[i] = g[c] * inv * (dy_at(i) - mdy - xhat * mdyx);
          }
    }
    auto L = [&](const Vec& xx, const Vec& gg, const Vec& bb) {
      return projected(batchnorm_train_forward(xx, N, C, H, W, gg, bb, eps, relu).y, r);
    };
    const Comparison cx = compare(numeric_grad([&](const Vec& t) { return L(t, g, b); }, x), dx);
    const Comparison cg = compare(numeric_grad([&](const Vec& t) { return L(x, t, b); }, g), dg);
    const Comparison cb = compare(numeric_grad([&](const Vec& t) { return L(x, g, t); }, b), db);
    EXPECT_LT(cx.max_rel_err, kFdRelTol) << cx.str({N, C, H, W});
    EXPECT_LT(cg.max_rel_err, kFdRelTol) << cg.str();
    EXPECT_LT(cb.max_rel_err, kFdRelTol) << cb.str();
  }
}

// ---------------------------------------------------------------------------
// ReLU, add

TEST(RefRelu, HandComputed) {
  expect_vec_near(relu_forward({-1.5, 0.0, 2.0, -0.0, 1e-9}), {0.0, 0.0, 2.0, 0.0, 1e-9}, 0.0);
}

TEST(RefRelu, FiniteDifferencesAwayFromKinkGiveMask) {
  Vec x = random_uniform(200, 61);
  nudge_from_zero(x);
  const Vec r = random_uniform(x.size(), 62);
  const Vec fd = numeric_grad([&](const Vec& t) { return projected(relu_forward(t), r); }, x);
  Vec expected(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) expected[i] = x[i] > 0 ? r[i] : 0.0;
  const Comparison c = compare(fd, expected);
  EXPECT_LT(c.max_rel_err, kFdRelTol) << c.str();
}

TEST(RefRelu, FiniteDifferencesAtTheKinkAreWrong) {
  // Why the kink guard exists: at x = 0 central differences give r/2, which
  // is neither subgradient the engine would produce (0 or r).
  const Vec x = {0.0, 0.5}, r = {1.0, 1.0};
  const Vec fd = numeric_grad([&](const Vec& t) { return projected(relu_forward(t), r); }, x);
  EXPECT_NEAR(fd[0], 0.5, 1e-9);
  EXPECT_GT(compare(fd, {0.0, 1.0}).max_rel_err, 0.1);
  EXPECT_GT(compare(fd, {1.0, 1.0}).max_rel_err, 0.1);
}

TEST(RefAdd, HandComputed) {
  expect_vec_near(add({1, 2, 3}, {0.5, -2, 10}), {1.5, 0, 13}, 0.0);
  EXPECT_THROW(add({1, 2}, {1}), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Pooling

TEST(RefMaxPool, PaddingActsAsMinusInfinity) {
  // All-negative 3x3 input, 3x3 window, stride 2, pad 1 -> 2x2. If padding
  // were 0 every output would be 0.
  Vec x = iota_vec(9);
  for (double& v : x) v = -v;
  expect_vec_near(maxpool_forward(x, 1, 1, 3, 3, 3, 2, 1), {-1, -2, -4, -5}, 0.0);
}

TEST(RefMaxPool, HandComputedNoPadding) {
  // 4x4, 2x2 window, stride 2 -> 2x2 block maxima.
  const Vec x = {1, 5, 2, 0,  //
                 3, 4, 8, 7,  //
                 -1, -2, 6, 6,  //
                 -3, -4, 9, -5};
  expect_vec_near(maxpool_forward(x, 1, 1, 4, 4, 2, 2, 0), {5, 8, -1, 9}, 0.0);
  // Overlapping 3x3 windows, stride 1: maxima of each 3x3 block.
  expect_vec_near(maxpool_forward(x, 1, 1, 4, 4, 3, 1, 0), {8, 8, 9, 9}, 0.0);
}

TEST(RefMaxPool, ShapesAndChannelsIndependent) {
  const int N = 3, C = 5, H = 7, W = 6;
  const Vec x = random_uniform(N * C * H * W, 71);
  const Vec y = maxpool_forward(x, N, C, H, W, 3, 2, 1);
  ASSERT_EQ(y.size(), static_cast<std::size_t>(N * C * 4 * 3));
  // Each output is the max of its window computed from a single-plane call.
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      const Vec plane(x.begin() + idx4(n, c, 0, 0, C, H, W), x.begin() + idx4(n, c, 0, 0, C, H, W) + H * W);
      const Vec yp = maxpool_forward(plane, 1, 1, H, W, 3, 2, 1);
      for (int i = 0; i < 12; ++i) EXPECT_EQ(y[idx4(n, c, 0, 0, C, 4, 3) + i], yp[i]);
    }
  EXPECT_THROW(maxpool_forward(x, N, C, H, W, 3, 2, 2), std::invalid_argument);  // pad > kernel / 2
}

TEST(RefMaxPool, FiniteDifferencesOnDistinctDataRouteToArgmax) {
  const int N = 2, C = 3, H = 7, W = 6, K = 3, s = 2, p = 1;
  const int Ho = conv_out_size(H, K, s, p), Wo = conv_out_size(W, K, s, p);
  Vec x = random_uniform(N * C * H * W, 72);
  make_distinct(x, H * W);
  ASSERT_GE(maxpool_min_gap(x, N, C, H, W, K, s, p), 1e-3);
  const Vec r = random_uniform(N * C * Ho * Wo, 73);
  Vec expected(x.size(), 0.0);  // overlapping windows accumulate
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int oh = 0; oh < Ho; ++oh)
        for (int ow = 0; ow < Wo; ++ow) {
          std::size_t arg = 0;
          double best = -std::numeric_limits<double>::infinity();
          for (int kh = 0; kh < K; ++kh)
            for (int kw = 0; kw < K; ++kw) {
              const int ih = oh * s - p + kh, iw = ow * s - p + kw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              if (x[idx4(n, c, ih, iw, C, H, W)] > best) best = x[arg = idx4(n, c, ih, iw, C, H, W)];
            }
          expected[arg] += r[idx4(n, c, oh, ow, C, Ho, Wo)];
        }
  const Vec fd = numeric_grad([&](const Vec& t) { return projected(maxpool_forward(t, N, C, H, W, K, s, p), r); }, x);
  const Comparison cmp = compare(fd, expected);
  EXPECT_LT(cmp.max_rel_err, kFdRelTol) << cmp.str({N, C, H, W});
}

TEST(RefAvgPool, HandComputed) {
  // N=1, C=2, 2x3 planes: means of 1..6 and -6..-1.
  const Vec x = {1, 2, 3, 4, 5, 6, -6, -5, -4, -3, -2, -1};
  expect_vec_near(avgpool_global(x, 1, 2, 2, 3), {3.5, -3.5}, 1e-15);
  const Vec x2 = {1, 3, 10, 20, 0, 0, 5, 7};  // N=2, C=2, 1x2
  expect_vec_near(avgpool_global(x2, 2, 2, 1, 2), {2, 15, 0, 6}, 1e-15);
}

// ---------------------------------------------------------------------------
// Linear

TEST(RefLinear, HandComputed) {
  // x = [[1,2],[3,4]], w = [[1,0],[1,1],[0,-1]], b = [0.5,-1,2].
  const Vec y = linear_forward({1, 2, 3, 4}, 2, 2, {1, 0, 1, 1, 0, -1}, 3, {0.5, -1, 2});
  expect_vec_near(y, {1.5, 2, 0, 3.5, 6, -2}, 0.0);
  EXPECT_THROW(linear_forward({1, 2, 3}, 2, 2, {1, 0, 1, 1, 0, -1}, 3, {0.5, -1, 2}), std::invalid_argument);
}

TEST(RefLinear, FiniteDifferencesMatchClosedForm) {
  // dL/dw = r^T x, dL/db = column sums of r, dL/dx = r w.
  const int N = 3, In = 5, Out = 4;
  const Vec x = random_uniform(N * In, 81), w = random_uniform(Out * In, 82), b = random_uniform(Out, 83);
  const Vec r = random_uniform(N * Out, 84);
  Vec dw(w.size(), 0.0), db(b.size(), 0.0), dx(x.size(), 0.0);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < Out; ++o) {
      db[o] += r[n * Out + o];
      for (int i = 0; i < In; ++i) {
        dw[o * In + i] += r[n * Out + o] * x[n * In + i];
        dx[n * In + i] += r[n * Out + o] * w[o * In + i];
      }
    }
  auto fd = [&](int which) {
    return numeric_grad(
        [&](const Vec& t) {
          return projected(linear_forward(which == 0 ? t : x, N, In, which == 1 ? t : w, Out, which == 2 ? t : b), r);
        },
        which == 0 ? x : which == 1 ? w : b);
  };
  EXPECT_LT(compare(fd(0), dx).max_rel_err, kFdRelTol);
  EXPECT_LT(compare(fd(1), dw).max_rel_err, kFdRelTol);
  EXPECT_LT(compare(fd(2), db).max_rel_err, kFdRelTol);
}

// ---------------------------------------------------------------------------
// Shortcut (option A)

TEST(RefShortcut, HandComputedStride2Cout4) {
  // x[1,2,3,3] = 0..17; y[1,4,2,2]: channel c < 2 holds x[c, {0,2}, {0,2}], the rest is 0.
  const Vec y = shortcut_pad_forward(iota_vec(18, 0.0), 1, 2, 3, 3, 4, 2);
  expect_vec_near(y, {0, 2, 6, 8, /*c1*/ 9, 11, 15, 17, /*c2*/ 0, 0, 0, 0, /*c3*/ 0, 0, 0, 0}, 0.0);
}

TEST(RefShortcut, ShapesAndIdentity) {
  EXPECT_EQ(shortcut_out_size(4, 2), 2);
  EXPECT_EQ(shortcut_out_size(5, 2), 3);  // ceil, like x[:, :, ::2]
  EXPECT_EQ(shortcut_out_size(7, 3), 3);
  EXPECT_EQ(shortcut_pad_forward(Vec(2 * 3 * 5 * 4), 2, 3, 5, 4, 6, 2).size(), static_cast<std::size_t>(2 * 6 * 3 * 2));
  const Vec x = random_uniform(2 * 3 * 5 * 4, 91);
  expect_vec_near(shortcut_pad_forward(x, 2, 3, 5, 4, 3, 1), x, 0.0);  // stride 1, no new channels
  EXPECT_THROW(shortcut_pad_forward(x, 2, 3, 5, 4, 2, 2), std::invalid_argument);
}

TEST(RefShortcut, BatchesAndOddSizes) {
  // N=2, Ci=1, 3x2, stride 2 -> 2x1, c_out 2: picks rows 0 and 2, column 0.
  const Vec x = {1, 2, 3, 4, 5, 6, /*n1*/ 7, 8, 9, 10, 11, 12};
  expect_vec_near(shortcut_pad_forward(x, 2, 1, 3, 2, 2, 2), {1, 5, 0, 0, 7, 11, 0, 0}, 0.0);
}

// ---------------------------------------------------------------------------
// Softmax cross-entropy

TEST(RefSoftmaxCE, UniformLogitsGiveLogK) {
  const int N = 3, K = 10;
  for (double smoothing : {0.0, 0.1, 1.0}) {
    const Vec logits(N * K, 0.7);
    EXPECT_NEAR(softmax_cross_entropy(logits, N, K, {0, 4, 9}, smoothing), std::log(10.0), 1e-14);
  }
}

TEST(RefSoftmaxCE, HandComputedTwoClasses) {
  // logits [0, ln 3] -> p = [1/4, 3/4].
  const Vec logits = {0.0, std::log(3.0)};
  EXPECT_NEAR(softmax_cross_entropy(logits, 1, 2, {0}, 0.0), std::log(4.0), 1e-14);
  EXPECT_NEAR(softmax_cross_entropy(logits, 1, 2, {1}, 0.0), std::log(4.0 / 3.0), 1e-14);
  // Smoothing 0.2, label 1: target = 0.8 * [0, 1] + 0.2 / 2 = [0.1, 0.9];
  // loss = -(0.1 ln 1/4 + 0.9 ln 3/4) = 0.1 ln 4 + 0.9 ln 4/3.
  EXPECT_NEAR(softmax_cross_entropy(logits, 1, 2, {1}, 0.2), 0.39754330131859184, 1e-14);
  // The mean over the batch: both rows together.
  EXPECT_NEAR(softmax_cross_entropy({0.0, std::log(3.0), 0.0, std::log(3.0)}, 2, 2, {0, 1}, 0.0),
              0.5 * (std::log(4.0) + std::log(4.0 / 3.0)), 1e-14);
}

TEST(RefSoftmaxCE, StableForLargeLogits) {
  EXPECT_NEAR(softmax_cross_entropy({1000.0, 0.0}, 1, 2, {0}, 0.0), 0.0, 1e-14);
  EXPECT_NEAR(softmax_cross_entropy({1000.0, 0.0}, 1, 2, {1}, 0.0), 1000.0, 1e-9);
  const Vec g = softmax_cross_entropy_grad({1000.0, 0.0}, 1, 2, {1}, 0.0);
  expect_vec_near(g, {1.0, -1.0}, 1e-14);
}

TEST(RefSoftmaxCE, AnalyticGradientMatchesFiniteDifferences) {
  const int N = 3, K = 7;
  auto rng = make_rng(101);
  Vec logits = random_uniform(N * K, rng, -3.0, 3.0);
  const std::vector<int> labels = random_labels(N, K, rng);
  for (double smoothing : {0.0, 0.1, 0.5}) {
    const Vec g = softmax_cross_entropy_grad(logits, N, K, labels, smoothing);
    const Vec fd =
        numeric_grad([&](const Vec& z) { return softmax_cross_entropy(z, N, K, labels, smoothing); }, logits);
    const Comparison c = compare(g, fd);
    EXPECT_LT(c.max_rel_err, kFdRelTol) << "smoothing " << smoothing << ": " << c.str({N, K});
    for (int n = 0; n < N; ++n) {  // rows of softmax - target sum to zero
      double row = 0;
      for (int k = 0; k < K; ++k) row += g[n * K + k];
      EXPECT_NEAR(row, 0.0, 1e-15);
    }
  }
}

TEST(RefSoftmaxCE, SoftmaxAndTop1) {
  expect_vec_near(softmax({0.0, std::log(3.0), 1.0, 1.0}, 2, 2), {0.25, 0.75, 0.5, 0.5}, 1e-15);
  EXPECT_EQ(top1_hits({0, 1, 2, /**/ 5, 1, 0, /**/ 1, 1, 0}, 3, 3, {2, 0, 1}), 2);  // tie -> first max (0)
  EXPECT_THROW(softmax_cross_entropy({0, 0}, 1, 2, {2}, 0.0), std::invalid_argument);
  EXPECT_THROW(softmax_cross_entropy({0, 0}, 1, 2, {-1}, 0.0), std::invalid_argument);
  EXPECT_THROW(softmax_cross_entropy({0, 0, 0, 0}, 2, 2, {0}, 0.0), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Finite-difference harness

TEST(FiniteDiff, RecoversGradientOfSumOfCubes) {
  const Vec x = random_uniform(50, 111);
  const Vec g = numeric_grad(
      [](const Vec& v) {
        double s = 0;
        for (double e : v) s += e * e * e;
        return s;
      },
      x);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(g[i], 3 * x[i] * x[i], 1e-8) << "at " << i;
}

TEST(FiniteDiff, RecoversGradientOfCoupledFunction) {
  // f = sin(x0) * x1 + exp(x2) * x0 -> (cos(x0) x1 + exp(x2), sin(x0), exp(x2) x0).
  const Vec x = {0.3, -1.2, 0.7};
  const Vec g = numeric_grad([](const Vec& v) { return std::sin(v[0]) * v[1] + std::exp(v[2]) * v[0]; }, x);
  expect_vec_near(g, {std::cos(0.3) * -1.2 + std::exp(0.7), std::sin(0.3), std::exp(0.7) * 0.3}, 1e-8);
  // A larger step has a visible truncation error (h^2 f'''/6): the step is honoured.
  const Vec gc = numeric_grad([](const Vec& v) { return v[0] * v[0] * v[0]; }, {1.0}, 0.1);
  EXPECT_NEAR(gc[0], 3.0 + 0.01, 1e-12);
}

TEST(FiniteDiff, Projected) {
  EXPECT_DOUBLE_EQ(projected(Vec{1, 2, 3}, Vec{0.5, -1, 2}), 4.5);
  EXPECT_DOUBLE_EQ(projected(std::vector<float>{1, 2, 3}, Vec{0.5, -1, 2}), 4.5);
  EXPECT_THROW(projected(Vec{1, 2}, Vec{1}), std::invalid_argument);
}

TEST(FiniteDiff, CompareReportsWorstElement) {
  const Comparison c = compare(Vec{1, 2, 3, 0}, Vec{1, 2.1, 3, 0});
  EXPECT_EQ(c.worst, 1u);
  EXPECT_NEAR(c.max_rel_err, 0.1 / 4.1, 1e-12);
  EXPECT_NEAR(c.max_abs_err, 0.1, 1e-12);
  EXPECT_EQ(c.a_worst, 2.0);
  EXPECT_EQ(c.b_worst, 2.1);
  // Tiny values are compared against the floor, not each other.
  EXPECT_NEAR(compare(Vec{1e-9}, Vec{-1e-9}).max_rel_err, 2e-6, 1e-15);
  // float overload, NaN, infinities, sizes.
  EXPECT_EQ(compare(std::vector<float>{0.5f, 1.0f}, Vec{0.5, 1.0}).max_rel_err, 0.0);
  const Comparison n = compare(Vec{1, std::nan(""), 3}, Vec{1, 2, 3});
  EXPECT_TRUE(std::isinf(n.max_rel_err));
  EXPECT_EQ(n.worst, 1u);
  EXPECT_TRUE(std::isinf(compare(Vec{1, 2}, Vec{1, std::nan("")}).max_rel_err));
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(compare(Vec{inf}, Vec{inf}).max_rel_err, 0.0);
  EXPECT_TRUE(std::isinf(compare(Vec{inf}, Vec{1.0}).max_rel_err));
  EXPECT_THROW(compare(Vec{1, 2}, Vec{1}), std::invalid_argument);
}

TEST(FiniteDiff, MessagesNameTheElement) {
  EXPECT_EQ(unravel_index(0, {3, 5, 7, 6}), "[0,0,0,0]");
  EXPECT_EQ(unravel_index(idx4(2, 3, 4, 5, 5, 7, 6), {3, 5, 7, 6}), "[2,3,4,5]");
  Vec a(2 * 3 * 2, 0.0), b = a;
  b[idx4(1, 2, 0, 1, 3, 1, 2)] = 1.0;
  const std::string s = compare(a, b).str({2, 3, 1, 2});
  EXPECT_NE(s.find("[1,2,0,1]"), std::string::npos) << s;
  EXPECT_NE(s.find("b=1"), std::string::npos) << s;
}

TEST(FiniteDiff, RandomDataIsSeededFloatRepresentableAndInRange) {
  const Vec a = random_uniform(1000, 7), b = random_uniform(1000, 7), c = random_uniform(1000, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double mean = 0;
  for (double v : a) {
    EXPECT_GE(v, -1.0);
    EXPECT_LE(v, 1.0);
    EXPECT_TRUE(is_float(v));
    mean += v / a.size();
  }
  EXPECT_NEAR(mean, 0.0, 0.1);
  EXPECT_EQ(to_double(to_float(a)), a);
  for (double v : random_uniform(100, 9, 2.0, 3.0)) {
    EXPECT_GE(v, 2.0);
    EXPECT_LE(v, 3.0);
  }
  auto rng = make_rng(5);
  const std::vector<int> l = random_labels(500, 10, rng);
  EXPECT_EQ(*std::min_element(l.begin(), l.end()), 0);
  EXPECT_EQ(*std::max_element(l.begin(), l.end()), 9);
}

// ---------------------------------------------------------------------------
// Kink guards

TEST(KinkGuard, NudgeFromZero) {
  Vec x = {0.0, 5e-4, -2e-4, 0.5, -0.7, 1e-3, -0.0};
  nudge_from_zero(x, 1e-3);
  EXPECT_GE(min_abs(x), 1e-3);
  EXPECT_GT(x[0], 0);
  EXPECT_GT(x[1], 0);
  EXPECT_LT(x[2], 0);
  EXPECT_EQ(x[3], 0.5);
  EXPECT_EQ(x[4], -0.7);
  EXPECT_EQ(x[5], 1e-3);
  EXPECT_LT(x[1], 2e-3);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_TRUE(is_float(x[i]));
  Vec big = random_uniform(5000, 121);
  EXPECT_LT(min_abs(big), 1e-3);  // the guard is needed on realistic data
  nudge_from_zero(big);
  EXPECT_GE(min_abs(big), 1e-3);
}

TEST(KinkGuard, MakeDistinctSeparatesEveryPair) {
  const int N = 3, C = 5, H = 7, W = 6;
  Vec x = random_uniform(N * C * H * W, 131);
  x[0] = x[1] = x[6] = 2.0;  // an exact tie for the maximum of the first window
  EXPECT_EQ(maxpool_min_gap(x, N, C, H, W, 3, 2, 1), 0.0);
  const Vec before = x;
  make_distinct(x, H * W);
  for (std::size_t g = 0; g < x.size(); g += H * W) {
    for (std::size_t i = g; i < g + H * W; ++i) {
      EXPECT_TRUE(is_float(x[i]));
      EXPECT_LE(std::fabs(x[i] - before[i]), H * W * 1e-3 + 1e-6);
      for (std::size_t j = i + 1; j < g + H * W; ++j) {
        EXPECT_GE(std::fabs(x[i] - x[j]), 1e-3) << i << " vs " << j;
        if (before[i] < before[j]) {
          EXPECT_LT(x[i], x[j]);  // order kept
        } else if (before[i] > before[j]) {
          EXPECT_GT(x[i], x[j]);
        }
      }
    }
  }
  EXPECT_GE(maxpool_min_gap(x, N, C, H, W, 3, 2, 1), 1e-3);
}

TEST(KinkGuard, MaxPoolMinGapHandComputed) {
  // 1x1x2x2, one 2x2 window: max 4, runner-up 3.
  EXPECT_DOUBLE_EQ(maxpool_min_gap({1, 3, 4, 2}, 1, 1, 2, 2, 2, 1, 0), 1.0);
  // Two windows (3x3 input, 2x2 window, stride 1): the closest gap wins.
  EXPECT_DOUBLE_EQ(maxpool_min_gap({9, 8.5, 0, 1, 2, 0, 0, 0, 0}, 1, 1, 3, 3, 2, 1, 0), 0.5);
  // Single-element windows (1x1 kernel) have no runner-up.
  EXPECT_TRUE(std::isinf(maxpool_min_gap({1, 1, 1, 1}, 1, 1, 2, 2, 1, 1, 0)));
}

TEST(KinkGuard, BnReluTrainNudge) {
  const int N = 3, C = 5, H = 7, W = 6;
  const double eps = 1e-5;
  const Vec g = random_uniform(C, 141, 0.5, 1.5);
  const Vec b = {0.0, 0.1, -0.2, 0.3, 0.05};
  Vec x = random_uniform(N * C * H * W, 142);
  EXPECT_LT(min_abs(batchnorm_train_forward(x, N, C, H, W, g, b, eps).y), 1e-3);  // needed on this data
  ASSERT_TRUE(nudge_bn_relu_train_inputs(x, N, C, H, W, g, b, eps));
  EXPECT_GE(min_abs(batchnorm_train_forward(x, N, C, H, W, g, b, eps).y), 1e-3);
  for (double v : x) EXPECT_TRUE(is_float(v));
  // A channel whose pre-activation is constant 0 cannot be fixed.
  Vec x2 = random_uniform(N * C * H * W, 143);
  EXPECT_FALSE(nudge_bn_relu_train_inputs(x2, N, C, H, W, {1, 1, 0, 1, 1}, {0, 0, 0, 0, 0}, eps));
}

TEST(KinkGuard, BnReluEvalNudge) {
  const int N = 2, C = 3, H = 5, W = 5;
  const Vec g = {1.0, -0.5, 2.0}, b = {0.1, 0.0, -0.3}, rm = {0.05, -0.1, 0.2}, rv = {0.5, 1.5, 0.8};
  Vec x = random_uniform(N * C * H * W, 151);
  x[3] = 0.05 - 0.1 * std::sqrt(0.5 + 1e-5);  // exactly on the kink of channel 0
  EXPECT_LT(min_abs(batchnorm_eval_forward(x, N, C, H, W, g, b, rm, rv, 1e-5)), 1e-6);
  ASSERT_TRUE(nudge_bn_relu_eval_inputs(x, N, C, H, W, g, b, rm, rv, 1e-5));
  EXPECT_GE(min_abs(batchnorm_eval_forward(x, N, C, H, W, g, b, rm, rv, 1e-5)), 1e-3);
}

}  // namespace
}  // namespace rn::ref
