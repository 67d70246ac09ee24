// Gradient checks of rn::BatchNorm2d (with and without fused ReLU) against
// the double reference: training forward with batch statistics and PyTorch's
// running-statistics update, eval forward with running statistics, and the
// training backward (dx, dgamma, dbeta) by finite differences through the
// batch statistics. Plain (5 channels) and blocked (16 channels) layouts.
#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>

#include "tests/unit/layer_test_util.h"
#include "trainer/nn/batchnorm2d.h"

namespace rn::test {
namespace {

constexpr double kEps = 1e-5;       // BatchNorm2d's default eps
constexpr double kMomentum = 0.1;   // and momentum

struct BnCase {
  const char* name;
  int n, c, h, w;
  bool relu;
  uint64_t seed;
};

std::ostream& operator<<(std::ostream& os, const BnCase& c) { return os << c.name; }

class BatchNormLayerGradient : public ::testing::TestWithParam<BnCase> {
 protected:
  void SetUp() override {
    const BnCase& c = GetParam();
    be = make_cpu_backend(2);
    bn = std::make_unique<BatchNorm2d>(*be, ps, "bn", c.c, c.relu);
    ps.allocate(*be);
    auto rng = ref::make_rng(c.seed);
    // gamma away from 0 so the fused-ReLU nudge can always clear the kink.
    gamma = ref::random_uniform(c.c, rng, 0.5, 1.5);
    beta = ref::random_uniform(c.c, rng, -0.5, 0.5);
    rmean = ref::random_uniform(c.c, rng, -0.5, 0.5);
    rvar = ref::random_uniform(c.c, rng, 0.5, 2.0);
    // Off-centre, non-unit-scale data so the statistics matter.
    x = ref::random_uniform(size_t(c.n) * c.c * c.h * c.w, rng, -1.5, 2.5);
    r = ref::random_uniform(x.size(), rng);
    set_tensor(*be, bn->gamma().value, gamma);
    set_tensor(*be, bn->beta().value, beta);
    set_tensor(*be, bn->running_mean().value, rmean);
    set_tensor(*be, bn->running_var().value, rvar);
    layout = be->activation_layout(c.c);
    shape = Shape{c.n, c.c, c.h, c.w};
  }

  std::unique_ptr<Backend> be;
  ParamStore ps;
  std::unique_ptr<BatchNorm2d> bn;
  Vec gamma, beta, rmean, rvar, x, r;
  Layout layout = Layout::kNCHW;
  Shape shape;
};

TEST_P(BatchNormLayerGradient, TrainForwardBackwardAndRunningStats) {
  const BnCase& c = GetParam();
  SCOPED_TRACE(std::string(c.name) + " in " + layout_name(layout));
  const std::string tag = std::string("bn ") + c.name;
  if (c.relu) {
    ASSERT_TRUE(ref::nudge_bn_relu_train_inputs(x, c.n, c.c, c.h, c.w, gamma, beta, kEps, kKinkMargin));
  }
  auto f = [&](const Vec& xx, const Vec& g, const Vec& b) {
    return ref::batchnorm_train_forward(xx, c.n, c.c, c.h, c.w, g, b, kEps, c.relu);
  };
  const ref::BnTrainResult expected = f(x, gamma, beta);
  const Tensor xt = upload(*be, x, shape, layout);

  const Tensor& y = bn->forward(xt, Mode::kTrain);
  ASSERT_EQ(y.shape(), shape);
  EXPECT_EQ(y.layout(), layout);
  EXPECT_TRUE(close(tag + " train y", download(*be, y), expected.y, dims(shape)));

  // Running statistics after one step (unbiased variance, momentum 0.1).
  Vec rm1 = rmean, rv1 = rvar;
  ref::batchnorm_update_running(rm1, rv1, expected, kMomentum);
  EXPECT_TRUE(close(tag + " running_mean", download(*be, bn->running_mean().value), rm1));
  EXPECT_TRUE(close(tag + " running_var", download(*be, bn->running_var().value), rv1));
  EXPECT_EQ(download(*be, find_buffer(ps, "bn.num_batches_tracked").value)[0], 1.f);

  // Backward with dy = r; FD through the batch statistics.
  const Tensor dy = make_dy(*be, y, r);
  be->fill(bn->gamma().grad, 123.f);  // backward must overwrite, not accumulate
  be->fill(bn->beta().grad, 123.f);
  const Tensor& dx = bn->backward(dy);
  ASSERT_EQ(dx.shape(), shape);
  EXPECT_EQ(dx.layout(), layout);
  const Vec dx_fd = ref::numeric_grad([&](const Vec& xx) { return ref::projected(f(xx, gamma, beta).y, r); }, x);
  const Vec dg_fd = ref::numeric_grad([&](const Vec& g) { return ref::projected(f(x, g, beta).y, r); }, gamma);
  const Vec db_fd = ref::numeric_grad([&](const Vec& b) { return ref::projected(f(x, gamma, b).y, r); }, beta);
  EXPECT_TRUE(close(tag + " dx", download(*be, dx), dx_fd, dims(shape)));
  EXPECT_TRUE(close(tag + " dgamma", download(*be, bn->gamma().grad), dg_fd));
  EXPECT_TRUE(close(tag + " dbeta", download(*be, bn->beta().grad), db_fd));

  // A second step accumulates into the running statistics and the counter.
  bn->forward(xt, Mode::kTrain);
  ref::batchnorm_update_running(rm1, rv1, expected, kMomentum);
  EXPECT_TRUE(close(tag + " running_mean (2 steps)", download(*be, bn->running_mean().value), rm1));
  EXPECT_TRUE(close(tag + " running_var (2 steps)", download(*be, bn->running_var().value), rv1));
  EXPECT_EQ(download(*be, find_buffer(ps, "bn.num_batches_tracked").value)[0], 2.f);
}

TEST_P(BatchNormLayerGradient, EvalForwardUsesRunningStats) {
  const BnCase& c = GetParam();
  SCOPED_TRACE(std::string(c.name) + " in " + layout_name(layout));
  if (c.relu) {
    ASSERT_TRUE(ref::nudge_bn_relu_eval_inputs(x, c.n, c.c, c.h, c.w, gamma, beta, rmean, rvar, kEps, kKinkMargin));
  }
  const Tensor xt = upload(*be, x, shape, layout);
  const Tensor& y = bn->forward(xt, Mode::kEval);
  ASSERT_EQ(y.shape(), shape);
  EXPECT_EQ(y.layout(), layout);
  const Vec expected = ref::batchnorm_eval_forward(x, c.n, c.c, c.h, c.w, gamma, beta, rmean, rvar, kEps, c.relu);
  EXPECT_TRUE(close(std::string("bn ") + c.name + " eval y", download(*be, y), expected, dims(shape)));
  // Eval leaves the running statistics and the counter alone.
  EXPECT_EQ(download(*be, bn->running_mean().value), ref::to_float(rmean));
  EXPECT_EQ(download(*be, bn->running_var().value), ref::to_float(rvar));
  EXPECT_EQ(download(*be, find_buffer(ps, "bn.num_batches_tracked").value)[0], 0.f);
}

// 16 channels: nChw8c on AVX2, nChw16c on AVX-512.
INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormLayerGradient,
                         ::testing::Values(BnCase{"Plain", 3, 5, 4, 3, false, 21},
                                           BnCase{"PlainRelu", 3, 5, 4, 3, true, 22},
                                           BnCase{"Blocked", 2, 16, 3, 5, false, 23},
                                           BnCase{"BlockedRelu", 2, 16, 3, 5, true, 24}),
                         [](const ::testing::TestParamInfo<BnCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace rn::test
