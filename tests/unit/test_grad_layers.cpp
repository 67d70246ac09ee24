// Gradient checks of the parameter-light layers against the double
// reference: MaxPool2d(3, 2, 1), GlobalAvgPool, Linear, ShortcutPad
// (option A) and SoftmaxCrossEntropy. 4-D layers run in a plain layout (odd
// channel counts) and a blocked one (16 channels: nChw8c on AVX2, nChw16c on
// AVX-512). See layer_test_util.h for the recipe and the tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "tests/unit/layer_test_util.h"
#include "trainer/core/error.h"
#include "trainer/nn/linear.h"
#include "trainer/nn/pool2d.h"
#include "trainer/nn/shortcut_pad.h"
#include "trainer/nn/softmax_cross_entropy.h"

namespace rn::test {
namespace {

struct Dims4 {
  const char* name;
  int n, c, h, w;
  uint64_t seed;
};
std::ostream& operator<<(std::ostream& os, const Dims4& d) { return os << d.name; }
std::string case_name(const ::testing::TestParamInfo<Dims4>& info) { return info.param.name; }

const auto kActivationShapes = ::testing::Values(Dims4{"Plain", 3, 5, 7, 6, 31}, Dims4{"Blocked", 2, 16, 6, 5, 32});

// ---------------------------------------------------------------------------
// MaxPool2d(3, 2, 1), the ImageNet stem's pooling

class MaxPoolLayerGradient : public ::testing::TestWithParam<Dims4> {};

TEST_P(MaxPoolLayerGradient, ForwardAndBackwardMatchReference) {
  const Dims4& d = GetParam();
  constexpr int kK = 3, kS = 2, kP = 1;
  auto be = make_cpu_backend(2);
  MaxPool2d pool(*be, kK, kS, kP);
  auto rng = ref::make_rng(d.seed);
  Vec x = ref::random_uniform(size_t(d.n) * d.c * d.h * d.w, rng);
  // No near-ties inside a plane, so the arg-max is unambiguous for the
  // engine and FD never switches the winner.
  ref::make_distinct(x, size_t(d.h) * d.w, kKinkMargin);
  ASSERT_GE(ref::maxpool_min_gap(x, d.n, d.c, d.h, d.w, kK, kS, kP), kKinkMargin);
  const int ho = ref::conv_out_size(d.h, kK, kS, kP), wo = ref::conv_out_size(d.w, kK, kS, kP);
  const Vec r = ref::random_uniform(size_t(d.n) * d.c * ho * wo, rng);
  const Shape s{d.n, d.c, d.h, d.w};
  const Layout l = be->activation_layout(d.c);
  SCOPED_TRACE(std::string(d.name) + " in " + layout_name(l));
  const Tensor xt = upload(*be, x, s, l);
  auto f = [&](const Vec& xx) { return ref::maxpool_forward(xx, d.n, d.c, d.h, d.w, kK, kS, kP); };

  const Tensor& y = pool.forward(xt, Mode::kTrain);
  ASSERT_EQ(y.shape(), (Shape{d.n, d.c, ho, wo}));
  EXPECT_EQ(y.layout(), l);
  const std::string tag = std::string("maxpool ") + d.name;
  EXPECT_TRUE(close(tag + " y", download(*be, y), f(x), dims(y.shape())));
  const Tensor& dx = pool.backward(make_dy(*be, y, r));
  ASSERT_EQ(dx.shape(), s);
  EXPECT_EQ(dx.layout(), l);
  const Vec dx_fd = ref::numeric_grad([&](const Vec& xx) { return ref::projected(f(xx), r); }, x);
  EXPECT_TRUE(close(tag + " dx", download(*be, dx), dx_fd, dims(s)));
}

// Odd sizes (7x6, 6x5) exercise windows hanging over the bottom/right edge.
INSTANTIATE_TEST_SUITE_P(Shapes, MaxPoolLayerGradient,
                         ::testing::Values(Dims4{"Plain", 3, 5, 7, 6, 41}, Dims4{"Blocked", 2, 16, 6, 5, 42},
                                           Dims4{"BlockedOdd", 2, 16, 9, 7, 43}),
                         case_name);

// ---------------------------------------------------------------------------
// GlobalAvgPool: [N,C,H,W] -> [N,C] (kNC)

class AvgPoolLayerGradient : public ::testing::TestWithParam<Dims4> {};

TEST_P(AvgPoolLayerGradient, ForwardAndBackwardMatchReference) {
  const Dims4& d = GetParam();
  auto be = make_cpu_backend(2);
  GlobalAvgPool pool(*be);
  auto rng = ref::make_rng(d.seed);
  const Vec x = ref::random_uniform(size_t(d.n) * d.c * d.h * d.w, rng);
  const Vec r = ref::random_uniform(size_t(d.n) * d.c, rng);
  const Shape s{d.n, d.c, d.h, d.w};
  const Layout l = be->activation_layout(d.c);
  SCOPED_TRACE(std::string(d.name) + " in " + layout_name(l));
  const Tensor xt = upload(*be, x, s, l);
  auto f = [&](const Vec& xx) { return ref::avgpool_global(xx, d.n, d.c, d.h, d.w); };

  const Tensor& y = pool.forward(xt, Mode::kTrain);
  ASSERT_EQ(y.shape(), (Shape{d.n, d.c}));
  EXPECT_EQ(y.layout(), Layout::kNC);
  const std::string tag = std::string("avgpool ") + d.name;
  EXPECT_TRUE(close(tag + " y", download(*be, y), f(x), {d.n, d.c}));
  const Tensor& dx = pool.backward(make_dy(*be, y, r));
  ASSERT_EQ(dx.shape(), s);
  EXPECT_EQ(dx.layout(), l);
  const Vec dx_fd = ref::numeric_grad([&](const Vec& xx) { return ref::projected(f(xx), r); }, x);
  EXPECT_TRUE(close(tag + " dx", download(*be, dx), dx_fd, dims(s)));
}

INSTANTIATE_TEST_SUITE_P(Shapes, AvgPoolLayerGradient, kActivationShapes, case_name);

// ---------------------------------------------------------------------------
// Linear

TEST(LinearLayerGradient, ForwardAndBackwardMatchReference) {
  constexpr int kN = 3, kIn = 10, kOut = 7;
  auto be = make_cpu_backend(2);
  ParamStore ps;
  Linear fc(*be, ps, "fc", kIn, kOut);
  ps.allocate(*be);
  auto rng = ref::make_rng(51);
  const Vec x = ref::random_uniform(kN * kIn, rng);
  const Vec w = ref::random_uniform(kOut * kIn, rng);
  const Vec b = ref::random_uniform(kOut, rng);
  const Vec r = ref::random_uniform(kN * kOut, rng);
  set_tensor(*be, fc.weight().value, w);
  set_tensor(*be, fc.bias().value, b);
  const Tensor xt = upload(*be, x, Shape{kN, kIn}, Layout::kNC);
  auto f = [&](const Vec& xx, const Vec& ww, const Vec& bb) {
    return ref::linear_forward(xx, kN, kIn, ww, kOut, bb);
  };

  const Tensor& y = fc.forward(xt, Mode::kTrain);
  ASSERT_EQ(y.shape(), (Shape{kN, kOut}));
  EXPECT_TRUE(close("fc y", download(*be, y), f(x, w, b), {kN, kOut}));
  be->fill(fc.weight().grad, 123.f);  // backward must overwrite, not accumulate
  be->fill(fc.bias().grad, 123.f);
  const Tensor& dx = fc.backward(make_dy(*be, y, r));
  ASSERT_EQ(dx.shape(), xt.shape());
  const Vec dx_fd = ref::numeric_grad([&](const Vec& v) { return ref::projected(f(v, w, b), r); }, x);
  const Vec dw_fd = ref::numeric_grad([&](const Vec& v) { return ref::projected(f(x, v, b), r); }, w);
  const Vec db_fd = ref::numeric_grad([&](const Vec& v) { return ref::projected(f(x, w, v), r); }, b);
  EXPECT_TRUE(close("fc dx", download(*be, dx), dx_fd, {kN, kIn}));
  EXPECT_TRUE(close("fc dW", download(*be, fc.weight().grad), dw_fd, {kOut, kIn}));
  EXPECT_TRUE(close("fc db", download(*be, fc.bias().grad), db_fd, {kOut}));
}

// ---------------------------------------------------------------------------
// ShortcutPad (option A): strided identity plus zero channels

struct PadCase {
  const char* name;
  int n, c_in, h, w, c_out, stride;
  uint64_t seed;
};
std::ostream& operator<<(std::ostream& os, const PadCase& c) { return os << c.name; }

class ShortcutPadLayerGradient : public ::testing::TestWithParam<PadCase> {};

TEST_P(ShortcutPadLayerGradient, ForwardAndBackwardMatchReference) {
  const PadCase& c = GetParam();
  auto be = make_cpu_backend(2);
  ShortcutPad pad(*be, c.c_out, c.stride);
  auto rng = ref::make_rng(c.seed);
  const Vec x = ref::random_uniform(size_t(c.n) * c.c_in * c.h * c.w, rng);
  const int ho = ref::shortcut_out_size(c.h, c.stride), wo = ref::shortcut_out_size(c.w, c.stride);
  const Vec r = ref::random_uniform(size_t(c.n) * c.c_out * ho * wo, rng);
  const Shape s{c.n, c.c_in, c.h, c.w};
  const Layout l = be->activation_layout(c.c_in);
  SCOPED_TRACE(std::string(c.name) + ": x in " + layout_name(l) + ", y in " +
               layout_name(be->activation_layout(c.c_out)));
  const Tensor xt = upload(*be, x, s, l);
  auto f = [&](const Vec& xx) { return ref::shortcut_pad_forward(xx, c.n, c.c_in, c.h, c.w, c.c_out, c.stride); };

  const Tensor& y = pad.forward(xt, Mode::kTrain);
  ASSERT_EQ(y.shape(), (Shape{c.n, c.c_out, ho, wo}));
  EXPECT_EQ(y.layout(), be->activation_layout(c.c_out));
  const std::string tag = std::string("shortcut-pad ") + c.name;
  // Pure data movement: exact.
  EXPECT_TRUE(close(tag + " y", download(*be, y), f(x), dims(y.shape()), 0.0));
  const Tensor& dx = pad.backward(make_dy(*be, y, r));
  ASSERT_EQ(dx.shape(), s);
  EXPECT_EQ(dx.layout(), l);
  // FD of a linear map is exact up to ~1e-10 (finite_diff.h); the engine's
  // dx is a copy of r, so the FD noise is all there is.
  const Vec dx_fd = ref::numeric_grad([&](const Vec& xx) { return ref::projected(f(xx), r); }, x);
  EXPECT_TRUE(close(tag + " dx", download(*be, dx), dx_fd, dims(s), 1e-6));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ShortcutPadLayerGradient,
    ::testing::Values(PadCase{"PlainStride2", 2, 5, 7, 6, 7, 2, 61},      // odd H, W: ceil(7/2) = 4
                      PadCase{"PlainStride1", 2, 5, 4, 3, 7, 1, 62},
                      PadCase{"PlainToBlockedStride2", 2, 5, 7, 5, 16, 2, 63},
                      PadCase{"BlockedStride2", 2, 16, 7, 5, 32, 2, 64},
                      PadCase{"BlockedStride1", 2, 16, 3, 4, 32, 1, 65},
                      PadCase{"BlockedToPlainStride2", 2, 16, 5, 5, 21, 2, 66}),
    [](const ::testing::TestParamInfo<PadCase>& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------
// SoftmaxCrossEntropy: loss, top-1 count and d(mean loss)/d(logits)

struct XentCase {
  const char* name;
  double smoothing;
  double scale;  // logits uniform in [-scale, scale]
  uint64_t seed;
};
std::ostream& operator<<(std::ostream& os, const XentCase& c) { return os << c.name; }

class SoftmaxCrossEntropyLayerGradient : public ::testing::TestWithParam<XentCase> {};

TEST_P(SoftmaxCrossEntropyLayerGradient, LossTop1AndGradMatchReference) {
  const XentCase& c = GetParam();
  constexpr int kN = 8, kK = 10;
  auto be = make_cpu_backend(2);
  SoftmaxCrossEntropy loss(*be, static_cast<float>(c.smoothing));
  auto rng = ref::make_rng(c.seed);
  const Vec logits = ref::random_uniform(kN * kK, rng, -c.scale, c.scale);
  // Half the rows labelled with their arg-max, so the top-1 count is neither
  // 0 nor N and a wrong count shows.
  std::vector<int> labels = ref::random_labels(kN, kK, rng);
  for (int n = 0; n < kN; n += 2)
    labels[n] = static_cast<int>(std::max_element(logits.begin() + n * kK, logits.begin() + (n + 1) * kK) -
                                 (logits.begin() + n * kK));
  const std::vector<int32_t> labels32(labels.begin(), labels.end());
  const Tensor lt = upload(*be, logits, Shape{kN, kK}, Layout::kNC);

  loss.forward_backward(lt, labels32.data());
  const LossResult res = loss.result();
  const std::string tag = std::string("xent ") + c.name;
  const double ref_loss = ref::softmax_cross_entropy(logits, kN, kK, labels, c.smoothing);
  EXPECT_TRUE(close(tag + " loss", {static_cast<float>(res.loss)}, {ref_loss}));
  const int ref_hits = ref::top1_hits(logits, kN, kK, labels);
  EXPECT_GE(ref_hits, kN / 2);
  EXPECT_EQ(res.correct, ref_hits);

  ASSERT_EQ(loss.grad().shape(), (Shape{kN, kK}));
  const std::vector<float> g = download(*be, loss.grad());
  EXPECT_TRUE(close(tag + " grad vs analytic", g,
                    ref::softmax_cross_entropy_grad(logits, kN, kK, labels, c.smoothing), {kN, kK}));
  const Vec g_fd = ref::numeric_grad(
      [&](const Vec& l) { return ref::softmax_cross_entropy(l, kN, kK, labels, c.smoothing); }, logits);
  EXPECT_TRUE(close(tag + " grad vs FD", g, g_fd, {kN, kK}));
}

INSTANTIATE_TEST_SUITE_P(Cases, SoftmaxCrossEntropyLayerGradient,
                         ::testing::Values(XentCase{"NoSmoothing", 0.0, 3.0, 71},
                                           XentCase{"Smoothing0p1", 0.1, 3.0, 72},
                                           // exp would overflow fp32 without the max shift
                                           XentCase{"LargeLogitsSmoothing0p1", 0.1, 100.0, 73}),
                         [](const ::testing::TestParamInfo<XentCase>& info) { return std::string(info.param.name); });

// The result belongs to the last call that succeeded: none before the first
// call, none after a call that rejected its labels (a stale result would
// let a trainer log the previous step's loss), and a later call's replaces
// an earlier one's. The host labels are read during the call.
TEST(SoftmaxCrossEntropyResult, BelongsToTheLastSuccessfulCall) {
  auto be = make_cpu_backend(1);
  SoftmaxCrossEntropy loss(*be);
  EXPECT_THROW(loss.result(), InternalError);
  const Tensor lt = upload(*be, {0.0, 2.0, 0.0, 0.0, 0.0, 2.0}, Shape{2, 3}, Layout::kNC);
  std::vector<int32_t> hit = {1, 2}, miss = {0, 0}, bad = {1, 3};
  loss.forward_backward(lt, hit.data());
  const LossResult first = loss.result();
  EXPECT_EQ(first.correct, 2);
  EXPECT_EQ(first.counted, 2);
  hit = {0, 0};  // changing the host labels afterwards changes nothing
  EXPECT_EQ(loss.result().correct, 2);
  EXPECT_THROW(loss.forward_backward(lt, bad.data()), InternalError);
  EXPECT_THROW(loss.result(), InternalError);
  loss.forward_backward(lt, miss.data());
  const LossResult second = loss.result();
  EXPECT_EQ(second.correct, 0);
  EXPECT_GT(second.loss, first.loss);
}

}  // namespace
}  // namespace rn::test
