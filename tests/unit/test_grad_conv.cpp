// Gradient checks of rn::Conv2d (oneDNN, fp32) against the double reference
// convolution: forward y, input gradient dx and weight gradient dW, in plain
// and blocked activation layouts. See layer_test_util.h for the recipe and
// the tolerance.
#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>

#include "tests/unit/layer_test_util.h"
#include "trainer/nn/conv2d.h"

namespace rn::test {
namespace {

struct ConvCase {
  const char* name;
  int n, c_in, h, w, c_out, k, stride, pad;
  bool need_dx;
  uint64_t seed;
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) { return os << c.name; }

class ConvLayerGradient : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvLayerGradient, ForwardAndBackwardMatchReference) {
  const ConvCase& c = GetParam();
  auto be = make_cpu_backend(2);
  ParamStore ps;
  Conv2d conv(*be, ps, "conv", c.c_in, c.c_out, c.k, c.stride, c.pad, c.need_dx);
  ps.allocate(*be);

  const int ho = ref::conv_out_size(c.h, c.k, c.stride, c.pad);
  const int wo = ref::conv_out_size(c.w, c.k, c.stride, c.pad);
  auto rng = ref::make_rng(c.seed);
  const Vec x = ref::random_uniform(size_t(c.n) * c.c_in * c.h * c.w, rng);
  const Vec w = ref::random_uniform(size_t(c.c_out) * c.c_in * c.k * c.k, rng);
  const Vec r = ref::random_uniform(size_t(c.n) * c.c_out * ho * wo, rng);

  set_tensor(*be, conv.weight().value, w);
  const Layout xl = be->activation_layout(c.c_in);
  const Tensor xt = upload(*be, x, Shape{c.n, c.c_in, c.h, c.w}, xl);
  SCOPED_TRACE(std::string(c.name) + ": x in " + layout_name(xl) + ", y in " +
               layout_name(be->activation_layout(c.c_out)));

  auto f = [&](const Vec& xx, const Vec& ww) {
    return ref::conv2d_forward(xx, c.n, c.c_in, c.h, c.w, ww, c.c_out, c.k, c.stride, c.pad);
  };

  const Tensor& y = conv.forward(xt, Mode::kTrain);
  ASSERT_EQ(y.shape(), (Shape{c.n, c.c_out, ho, wo}));
  EXPECT_EQ(y.layout(), be->activation_layout(c.c_out));
  const std::string tag = std::string("conv ") + c.name;
  EXPECT_TRUE(close(tag + " y", download(*be, y), f(x, w), dims(y.shape())));

  const Tensor dy = make_dy(*be, y, r);
  be->fill(conv.weight().grad, 123.f);  // backward must overwrite, not accumulate
  const Tensor& dx = conv.backward(dy);

  const Vec dw_fd = ref::numeric_grad([&](const Vec& ww) { return ref::projected(f(x, ww), r); }, w);
  EXPECT_TRUE(close(tag + " dW", download(*be, conv.weight().grad), dw_fd, {c.c_out, c.c_in, c.k, c.k}));

  if (!c.need_dx) {
    EXPECT_TRUE(dx.empty()) << "need_input_grad=false must return an empty tensor";
    return;
  }
  ASSERT_FALSE(dx.empty());
  ASSERT_EQ(dx.shape(), xt.shape());
  EXPECT_EQ(dx.layout(), xl);
  const Vec dx_fd = ref::numeric_grad([&](const Vec& xx) { return ref::projected(f(xx, w), r); }, x);
  EXPECT_TRUE(close(tag + " dx", download(*be, dx), dx_fd, dims(xt.shape())));
}

// Blocked cases use 16 channels: nChw8c on AVX2 and nChw16c on AVX-512.
INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvLayerGradient,
    ::testing::Values(
        // Odd everything, plain layout in and out.
        ConvCase{"Plain3x3Stride2Pad1", 3, 5, 7, 6, 7, 3, 2, 1, true, 11},
        // Blocked in and out.
        ConvCase{"Blocked3x3Stride1Pad1", 2, 16, 6, 5, 16, 3, 1, 1, true, 12},
        ConvCase{"Blocked3x3Stride2Pad1", 2, 16, 7, 5, 16, 3, 2, 1, true, 13},
        // 1x1 stride 2 (projection shortcut), plain and blocked, and plain -> blocked.
        ConvCase{"Plain1x1Stride2", 3, 5, 7, 6, 7, 1, 2, 0, true, 14},
        ConvCase{"Blocked1x1Stride2", 2, 16, 7, 5, 32, 1, 2, 0, true, 15},
        ConvCase{"PlainToBlocked1x1Stride2", 2, 5, 7, 6, 16, 1, 2, 0, true, 16},
        ConvCase{"BlockedToPlain3x3Stride1", 2, 16, 5, 6, 7, 3, 1, 1, true, 17},
        // The ImageNet stem: 7x7 stride 2 pad 3 without input gradient.
        ConvCase{"Stem7x7Stride2Pad3NoDx", 2, 3, 11, 9, 16, 7, 2, 3, false, 18}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace rn::test
