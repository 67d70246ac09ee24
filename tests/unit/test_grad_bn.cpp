// Gradient checks of rn::BatchNorm2d (with and without fused ReLU, and with
// the residual add before it) against
// the double reference: training forward with batch statistics and PyTorch's
// running-statistics update, eval forward with running statistics, and the
// training backward (dx, dgamma, dbeta) by finite differences through the
// batch statistics. Plain (5 channels) and blocked (16 channels) layouts.
//
// Frozen BN (BatchNorm2d::set_frozen, model.frozen_bn): the training forward
// against the running-statistics reference, the backward by finite
// differences of that same function (statistics constant), and the running
// statistics and counter left unchanged; also through a whole ResNet.
#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "tests/unit/layer_test_util.h"
#include "trainer/core/error.h"
#include "trainer/model/resnet.h"
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
    bn = std::make_unique<BatchNorm2d>(*be, ps, "bn", c.c, c.relu ? BnTail::kRelu : BnTail::kNone);
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

TEST_P(BatchNormLayerGradient, FrozenTrainUsesRunningStatsAndExactGradient) {
  const BnCase& c = GetParam();
  SCOPED_TRACE(std::string(c.name) + " in " + layout_name(layout));
  const std::string tag = std::string("frozen bn ") + c.name;
  bn->set_frozen(true);
  EXPECT_TRUE(bn->frozen());
  if (c.relu) {
    ASSERT_TRUE(ref::nudge_bn_relu_eval_inputs(x, c.n, c.c, c.h, c.w, gamma, beta, rmean, rvar, kEps, kKinkMargin));
  }
  // The frozen layer computes the running-statistics function in training.
  auto f = [&](const Vec& xx, const Vec& g, const Vec& b) {
    return ref::batchnorm_eval_forward(xx, c.n, c.c, c.h, c.w, g, b, rmean, rvar, kEps, c.relu);
  };
  const Vec expected = f(x, gamma, beta);
  const Tensor xt = upload(*be, x, shape, layout);

  const Tensor& y = bn->forward(xt, Mode::kTrain);
  ASSERT_EQ(y.shape(), shape);
  EXPECT_EQ(y.layout(), layout);
  EXPECT_TRUE(close(tag + " train y", download(*be, y), expected, dims(shape)));
  // Running statistics and the counter are untouched (bit for bit).
  EXPECT_EQ(download(*be, bn->running_mean().value), ref::to_float(rmean));
  EXPECT_EQ(download(*be, bn->running_var().value), ref::to_float(rvar));
  EXPECT_EQ(download(*be, find_buffer(ps, "bn.num_batches_tracked").value)[0], 0.f);

  // Backward with dy = r: FD of the running-statistics function.
  const Tensor dy = make_dy(*be, y, r);
  be->fill(bn->gamma().grad, 123.f);  // backward must overwrite, not accumulate
  be->fill(bn->beta().grad, 123.f);
  const Tensor& dx = bn->backward(dy);
  ASSERT_EQ(dx.shape(), shape);
  EXPECT_EQ(dx.layout(), layout);
  const Vec dx_fd = ref::numeric_grad([&](const Vec& xx) { return ref::projected(f(xx, gamma, beta), r); }, x);
  const Vec dg_fd = ref::numeric_grad([&](const Vec& g) { return ref::projected(f(x, g, beta), r); }, gamma);
  const Vec db_fd = ref::numeric_grad([&](const Vec& b) { return ref::projected(f(x, gamma, b), r); }, beta);
  EXPECT_TRUE(close(tag + " dx", download(*be, dx), dx_fd, dims(shape)));
  EXPECT_TRUE(close(tag + " dgamma", download(*be, bn->gamma().grad), dg_fd));
  EXPECT_TRUE(close(tag + " dbeta", download(*be, bn->beta().grad), db_fd));

  // More training steps still leave the statistics alone, and the output
  // agrees with the eval forward (the same function).
  const std::vector<float> y1 = download(*be, bn->forward(xt, Mode::kTrain));
  EXPECT_TRUE(close(tag + " train y (step 2)", y1, expected, dims(shape)));
  bn->backward(dy);
  EXPECT_TRUE(close(tag + " eval y", download(*be, bn->forward(xt, Mode::kEval)), expected, dims(shape)));
  EXPECT_EQ(download(*be, bn->running_mean().value), ref::to_float(rmean));
  EXPECT_EQ(download(*be, bn->running_var().value), ref::to_float(rvar));
  EXPECT_EQ(download(*be, find_buffer(ps, "bn.num_batches_tracked").value)[0], 0.f);
}

TEST_P(BatchNormLayerGradient, SetFrozenAfterTheFirstForwardIsRejected) {
  const Tensor xt = upload(*be, x, shape, layout);
  bn->set_frozen(false);  // before any forward: allowed
  bn->forward(xt, Mode::kEval);
  EXPECT_THROW(bn->set_frozen(true), InternalError);
  EXPECT_FALSE(bn->frozen());
}

// 16 channels: nChw8c on AVX2, nChw16c on AVX-512.
INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormLayerGradient,
                         ::testing::Values(BnCase{"Plain", 3, 5, 4, 3, false, 21},
                                           BnCase{"PlainRelu", 3, 5, 4, 3, true, 22},
                                           BnCase{"Blocked", 2, 16, 3, 5, false, 23},
                                           BnCase{"BlockedRelu", 2, 16, 3, 5, true, 24}),
                         [](const ::testing::TestParamInfo<BnCase>& info) { return std::string(info.param.name); });

// Odd shapes: one channel, 1x1 and non-square planes, a single image, and 8
// channels (nChw8c on AVX2 and AVX-512) / 48 channels (blocked with 3 blocks
// of 16 on AVX-512, 6 of 8 on AVX2).
INSTANTIATE_TEST_SUITE_P(OddShapes, BatchNormLayerGradient,
                         ::testing::Values(BnCase{"OneChannel", 5, 1, 3, 1, false, 31},
                                           BnCase{"OneChannelRelu", 2, 1, 1, 7, true, 32},
                                           BnCase{"SingleImage", 1, 3, 5, 7, false, 33},
                                           BnCase{"SingleImageRelu", 1, 3, 5, 7, true, 34},
                                           BnCase{"Blocked8", 3, 8, 3, 1, false, 35},
                                           BnCase{"Blocked8Relu", 1, 8, 7, 5, true, 36},
                                           BnCase{"Blocked48OnePixelRelu", 3, 48, 1, 1, true, 37}),
                         [](const ::testing::TestParamInfo<BnCase>& info) { return std::string(info.param.name); });

// BnTail::kAddRelu, a residual block's tail: y = relu(bn(x) + z) in the
// training forward (batch statistics, or the running ones when frozen) and
// in eval; backward's dx, dgamma, dbeta and dz (the residual's gradient),
// each by finite differences; eval with the statistics training left.
struct AddReluCase {
  const char* name;
  int n, c, h, w;
  bool frozen;
  uint64_t seed;
};
std::ostream& operator<<(std::ostream& os, const AddReluCase& c) { return os << c.name; }

class BatchNormAddReluGradient : public ::testing::TestWithParam<AddReluCase> {};

TEST_P(BatchNormAddReluGradient, ForwardBackwardAndEvalMatchReference) {
  const AddReluCase& c = GetParam();
  auto be = make_cpu_backend(2);
  ParamStore ps;
  BatchNorm2d bn(*be, ps, "bn", c.c, BnTail::kAddRelu);
  ps.allocate(*be);
  bn.set_frozen(c.frozen);
  const Shape shape{c.n, c.c, c.h, c.w};
  const Layout layout = be->activation_layout(c.c);
  const std::string tag = std::string("bn+add+relu ") + c.name;
  SCOPED_TRACE(tag + " in " + layout_name(layout));

  Vec gamma, beta, rmean, rvar, x, z;
  // bn(x) + z without the ReLU, as the layer normalises in training.
  auto pre = [&](const Vec& xx, const Vec& zz, const Vec& g, const Vec& b) {
    const Vec n = c.frozen ? ref::batchnorm_eval_forward(xx, c.n, c.c, c.h, c.w, g, b, rmean, rvar, kEps, false)
                           : ref::batchnorm_train_forward(xx, c.n, c.c, c.h, c.w, g, b, kEps, false).y;
    return ref::add(n, zz);
  };
  // The first seed whose pre-activations all clear the ReLU's kink.
  uint64_t seed = c.seed;
  for (;; ++seed) {
    ASSERT_LT(seed, c.seed + 50) << "no kink-free data found";
    auto rng = ref::make_rng(seed);
    gamma = ref::random_uniform(c.c, rng, 0.5, 1.5);
    beta = ref::random_uniform(c.c, rng, -0.5, 0.5);
    rmean = ref::random_uniform(c.c, rng, -0.5, 0.5);
    rvar = ref::random_uniform(c.c, rng, 0.5, 2.0);
    x = ref::random_uniform(size_t(shape.numel()), rng, -1.5, 2.5);
    z = ref::random_uniform(size_t(shape.numel()), rng);
    if (ref::min_abs(pre(x, z, gamma, beta)) >= kKinkMargin) break;
  }
  auto f = [&](const Vec& xx, const Vec& zz, const Vec& g, const Vec& b) {
    return ref::relu_forward(pre(xx, zz, g, b));
  };
  set_tensor(*be, bn.gamma().value, gamma);
  set_tensor(*be, bn.beta().value, beta);
  set_tensor(*be, bn.running_mean().value, rmean);
  set_tensor(*be, bn.running_var().value, rvar);
  const Tensor xt = upload(*be, x, shape, layout), zt = upload(*be, z, shape, layout);

  const Tensor& y = bn.forward_add(xt, zt, Mode::kTrain);
  EXPECT_TRUE(close(tag + " train y", download(*be, y), f(x, z, gamma, beta), dims(shape)));

  auto rng = ref::make_rng(seed + 1000);
  const Vec r = ref::random_uniform(size_t(shape.numel()), rng);
  be->fill(bn.gamma().grad, 123.f);  // backward must overwrite, not accumulate
  be->fill(bn.beta().grad, 123.f);
  const Tensor& dx = bn.backward(make_dy(*be, y, r));
  const Tensor& dz = bn.dz();
  ASSERT_EQ(dz.shape(), shape);
  EXPECT_EQ(dz.layout(), layout);
  auto fd = [&](auto&& fun, const Vec& at) {
    return ref::numeric_grad([&](const Vec& v) { return ref::projected(fun(v), r); }, at);
  };
  EXPECT_TRUE(
      close(tag + " dx", download(*be, dx), fd([&](const Vec& v) { return f(v, z, gamma, beta); }, x), dims(shape)));
  EXPECT_TRUE(
      close(tag + " dz", download(*be, dz), fd([&](const Vec& v) { return f(x, v, gamma, beta); }, z), dims(shape)));
  EXPECT_TRUE(close(tag + " dgamma", download(*be, bn.gamma().grad),
                    fd([&](const Vec& v) { return f(x, z, v, beta); }, gamma)));
  EXPECT_TRUE(
      close(tag + " dbeta", download(*be, bn.beta().grad), fd([&](const Vec& v) { return f(x, z, gamma, v); }, beta)));

  // Eval: the running statistics as training left them.
  Vec rm, rv;
  for (float v : download(*be, bn.running_mean().value)) rm.push_back(v);
  for (float v : download(*be, bn.running_var().value)) rv.push_back(v);
  const Vec want = ref::relu_forward(
      ref::add(ref::batchnorm_eval_forward(x, c.n, c.c, c.h, c.w, gamma, beta, rm, rv, kEps, false), z));
  EXPECT_TRUE(close(tag + " eval y", download(*be, bn.forward_add(xt, zt, Mode::kEval)), want, dims(shape)));
}

INSTANTIATE_TEST_SUITE_P(Tails, BatchNormAddReluGradient,
                         ::testing::Values(AddReluCase{"Plain", 3, 5, 4, 3, false, 41},
                                           AddReluCase{"Blocked", 2, 16, 3, 5, false, 42},
                                           AddReluCase{"PlainFrozen", 2, 5, 3, 4, true, 43},
                                           AddReluCase{"BlockedFrozen", 2, 8, 4, 3, true, 44}),
                         [](const ::testing::TestParamInfo<AddReluCase>& info) {
                           return std::string(info.param.name);
                         });

// set_frozen_bn reaches every BN of a ResNet (stem, blocks, projection
// shortcuts): a training forward equals the eval forward, each image's
// logits do not depend on the rest of the batch, and no buffer changes.
TEST(FrozenBatchNormResNet, TrainEqualsEvalAndBuffersStayPut) {
  auto be = make_cpu_backend(2);
  ArchSpec arch;
  ASSERT_TRUE(lookup_arch("cifar-resnet8", &arch));
  ResNet net(*be, arch, 10, ShortcutType::kProjection);
  net.initialize(7, false);
  net.set_frozen_bn(true);
  // Non-trivial running statistics (var != 1, mean != 0) and non-zero counters.
  auto rng = ref::make_rng(41);
  int n_bn = 0;
  for (auto& b : net.params().buffers()) {
    const size_t n = static_cast<size_t>(b.shape.numel());
    if (b.name.ends_with("running_mean")) set_tensor(*be, b.value, ref::random_uniform(n, rng, -0.3, 0.3)), ++n_bn;
    if (b.name.ends_with("running_var")) set_tensor(*be, b.value, ref::random_uniform(n, rng, 0.5, 2.0));
    if (b.name.ends_with("num_batches_tracked")) set_tensor(*be, b.value, Vec(n, 5.0));
  }
  ASSERT_GE(n_bn, 1 + 3 * 2 + 2);  // stem, 3 basic blocks, 2 projection BNs
  std::vector<std::vector<float>> before;
  for (auto& b : net.params().buffers()) before.push_back(download(*be, b.value));

  const int n = 3, size = 8;
  const Vec x = ref::random_uniform(size_t(n) * 3 * size * size, rng, -1.0, 1.0);
  const Tensor xt = upload(*be, x, Shape{n, 3, size, size}, Layout::kNCHW);
  const std::vector<float> train = download(*be, net.forward(xt, Mode::kTrain));
  const Vec dlogits = ref::random_uniform(size_t(n) * 10, rng);
  const Tensor dy = upload(*be, dlogits, Shape{n, 10}, Layout::kNC);
  net.backward(dy);
  const std::vector<float> eval = download(*be, net.forward(xt, Mode::kEval));
  EXPECT_TRUE(close("frozen resnet train vs eval logits", train, ref::to_double(eval), {n, 10}));

  // Image 1 alone gives the same logits as within the batch.
  const Vec x1(x.begin() + 3 * size * size, x.begin() + 2 * 3 * size * size);
  const Tensor x1t = upload(*be, x1, Shape{1, 3, size, size}, Layout::kNCHW);
  const std::vector<float> alone = download(*be, net.forward(x1t, Mode::kTrain));
  EXPECT_TRUE(close("frozen resnet image alone vs in batch", alone,
                    ref::to_double(std::vector<float>(train.begin() + 10, train.begin() + 20))));

  size_t i = 0;
  for (auto& b : net.params().buffers()) EXPECT_EQ(download(*be, b.value), before[i++]) << b.name;
}

}  // namespace
}  // namespace rn::test
