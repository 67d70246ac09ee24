// A whole training step of a ResNet on the CUDA backend against the CPU
// backend: the same architecture, initialisation and batch; forward in
// training mode, softmax cross-entropy, backward, one SGD step. Compared:
// logits, loss, every parameter's gradient, the updated weights and
// momentum, and the BN running statistics. cifar-resnet20 with shortcut A
// (pad shortcuts, 3x3 stem) at 32x32, and resnet18 (projection shortcuts,
// 7x7 stem and max pooling) at 64x64; small batches keep it fast.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "tests/gpu/gpu_test_util.h"
#include "trainer/model/resnet.h"
#include "trainer/nn/softmax_cross_entropy.h"
#include "trainer/optim/sgd.h"

namespace rn::gpu_test {
namespace {

constexpr int64_t kClasses = 10;

struct NetCase {
  const char* name;
  const char* arch;
  ShortcutType shortcut;
  int64_t image, batch;
  std::vector<int32_t> labels;  // one per image; -1 marks a skipped image
};

std::ostream& operator<<(std::ostream& os, const NetCase& c) { return os << c.name; }

const NetCase kNets[] = {
    {"CifarResnet20A", "cifar-resnet20", ShortcutType::kPadIdentity, 32, 3, {3, -1, 7}},
    {"Resnet18", "resnet18", ShortcutType::kProjection, 64, 2, {4, 9}},
};

struct Named {
  std::string name;
  HostVec values;
};

struct StepResult {
  HostVec logits;
  LossResult loss;
  bool grads_finite = false;
  std::vector<Named> grads, weights, velocity,
      buffers;  // per parameter / buffer, in ParamStore order
};

// One step on `be`. BN gamma ~ U(0.8, 1.2) and beta ~ U(2, 3) instead of
// 1 / 0: the ReLU inputs then sit at mean ~2.5, standard deviation ~1. The
// ReLUs still zero ~1% of their inputs (the masks matter), but few inputs
// lie within fp32 noise (~1e-6) of the kink, where the two backends may
// legitimately disagree on the mask and then on a whole gradient term. With
// beta = 0 (density ~0.4 at the kink, ~4e5 ReLU inputs in these networks)
// ~0.3 such flips per step are expected, each moving some gradient tensor
// by ~1e-2 of its maximum: the 1e-4 comparison would be a coin flip. Here
// it is ~0.02 (and the outcome is a fixed property of the data).
StepResult run_step(Backend& be, const NetCase& c, float loss_scale) {
  ArchSpec arch;
  if (!lookup_arch(c.arch, &arch)) throw std::invalid_argument(std::string("no architecture ") + c.arch);
  // Activations and their gradients on storage that turns NaN when handed
  // back: a kernel reading one after its release, or writing only part of
  // one, shows as NaN or a mismatch instead of depending on stale contents.
  TensorPool grads(be, /*poison=*/true);
  ResNet net(be, arch, kClasses, c.shortcut);
  net.set_grad_pool(&grads);
  net.set_output_pool(&grads);  // activations on the same storage, as resnet-train
  net.initialize(/*seed=*/17, /*zero_init_residual=*/false);
  ParamStore& ps = net.params();
  Rng rng(18);
  for (auto& p : ps.params()) {
    if (p.shape.rank() != 1 || p.name.rfind("fc.", 0) == 0) continue;
    const bool gamma = p.name.ends_with(".weight");
    set(be, p.value, rng.vec(size_t(p.shape.numel()), gamma ? 0.8 : 2.0, gamma ? 1.2 : 3.0));
  }
  Sgd opt(be, ps,
          SgdOptions{/*momentum=*/0.9f, /*nesterov=*/true,
                     /*weight_decay=*/5e-4f,
                     /*no_decay_bn_bias=*/true});
  SoftmaxCrossEntropy loss(be, /*label_smoothing=*/0.1f);

  const Shape xs{c.batch, 3, c.image, c.image};
  Rng data(19);
  const Tensor x = upload(be, data.vec(size_t(xs.numel())), xs, Layout::kNCHW);
  StepResult r;
  const Tensor& logits = net.forward(x, Mode::kTrain);
  r.logits = download(be, logits);
  loss.forward_backward(logits, c.labels.data(), loss_scale);
  for (auto& p : ps.params()) poison(be, p.grad);  // backward must write every gradient (not the alignment gaps)
  net.backward(loss.grad());
  r.grads_finite = be.all_finite(ps.flat_grads());
  for (auto& p : ps.params()) r.grads.push_back({p.name, download(be, p.grad)});
  opt.step(/*lr=*/0.1f, /*grad_scale=*/1.f / loss_scale);
  r.loss = loss.result();  // read after the update is queued, as the trainer does
  for (auto& p : ps.params()) {
    r.weights.push_back({p.name, download(be, p.value)});
    r.velocity.push_back({p.name, download(be, opt.velocity().slice(p.offset, Shape{p.shape.numel()}, Layout::kNC))});
  }
  for (auto& b : ps.buffers()) r.buffers.push_back({b.name, download(be, b.value)});
  return r;
}

// In mixed precision the two runs do not see the same numbers (the GPU
// rounds every activation, the weights of every convolution and the
// gradients to the storage type; the CPU stays fp32), so there is no
// one-rounding bound. Each rounding is a relative perturbation of at most
// u = 2^-9 (bf16; 2^-11 fp16), ~u / sqrt(3) RMS, independent between
// elements; a step has ~4 per layer (input, weights, output, BN output)
// along ~20 layers, and BN renormalises after each convolution, so the
// perturbations add in quadrature rather than compound: ~u / sqrt(3) *
// sqrt(80) ~ 1e-2 relative RMS in late activations and in gradients.
// Bounds with a factor ~5 over that:
//  * logits: max|gpu - cpu| / max|cpu| < 5e-2;
//  * the loss, consistent with the logits: per sample d(loss)/d(logits) =
//    p - target, whose entries' magnitudes sum to at most 2, so
//    |loss_gpu - loss_cpu| <= 2 max|logit_gpu - logit_cpu| (plus the fp32
//    rounding of the loss itself, 1e-5 relative). A fixed percentage would
//    be the same bound less well founded: these logits reach ~3, and 1e-2
//    relative noise on them may move a loss of ~2.3 by ~3%;
//  * every gradient, momentum buffer and running statistic: cosine
//    similarity with the CPU's > 0.99 (a 1e-2 RMS perturbation gives
//    ~0.9999; a wrong term, index or layout gives far less), and a norm
//    within 5% of the CPU's (cosine is blind to scale: a lost loss scale or
//    factor 2 would pass it);
//  * weights after the step: max rel. error < 1e-2 (they move by lr * the
//    update, whose error is covered above).
constexpr double kMixedLogitTol = 5e-2, kMixedCosine = 0.99, kMixedNormTol = 5e-2;
constexpr double kMixedWeightTol = 1e-2;

class GpuResNetStep : public GpuTestWithParam<std::tuple<DType, NetCase>> {};

TEST_P(GpuResNetStep, MatchesCpu) {
  const auto& [t, c] = GetParam();
  // fp16 needs loss scaling to keep small gradients above its subnormals;
  // both runs use the same power of two (exact on the CPU).
  const float loss_scale = t == DType::kF16 ? 128.f : 1.f;
  const StepResult want = run_step(cpu(), c, loss_scale);
  const StepResult got = run_step(gpu(t), c, loss_scale);
  ASSERT_EQ(got.grads.size(), want.grads.size());
  ASSERT_EQ(got.buffers.size(), want.buffers.size());
  EXPECT_TRUE(got.grads_finite) << "non-finite gradients (loss scale " << loss_scale << ")";
  EXPECT_EQ(got.loss.counted, want.loss.counted);
  const Shape ls{c.batch, kClasses};

  if (t == DType::kF32) {
    // fp32 reference mode: 1e-4 relative to each tensor's largest magnitude.
    EXPECT_TRUE(near("logits", got.logits, want.logits, kF32Tol, ls));
    EXPECT_NEAR(got.loss.loss, want.loss.loss, kF32Tol * std::fabs(want.loss.loss));
    EXPECT_EQ(got.loss.correct, want.loss.correct);
    for (size_t i = 0; i < got.grads.size(); ++i) {
      const std::string& n = want.grads[i].name;
      EXPECT_TRUE(near("grad " + n, got.grads[i].values, want.grads[i].values, kF32Tol));
      EXPECT_TRUE(near("updated " + n, got.weights[i].values, want.weights[i].values, kF32Tol));
      EXPECT_TRUE(near("momentum " + n, got.velocity[i].values, want.velocity[i].values, kF32Tol));
    }
    for (size_t i = 0; i < got.buffers.size(); ++i) {
      EXPECT_TRUE(near(want.buffers[i].name, got.buffers[i].values, want.buffers[i].values, kF32Tol));
    }
    return;
  }
  // Mixed precision: the bounds above.
  EXPECT_TRUE(near("logits", got.logits, want.logits, kMixedLogitTol, ls));
  const double logit_err = diff(got.logits, want.logits).max_err;
  EXPECT_NEAR(got.loss.loss, want.loss.loss, 2 * logit_err + 1e-5 * std::fabs(want.loss.loss))
      << "the loss moved more than its logits allow";
  for (size_t i = 0; i < got.grads.size(); ++i) {
    const std::string& n = want.grads[i].name;
    EXPECT_TRUE(
        same_direction_and_norm("grad " + n, got.grads[i].values, want.grads[i].values, kMixedCosine, kMixedNormTol));
    EXPECT_TRUE(near("updated " + n, got.weights[i].values, want.weights[i].values, kMixedWeightTol));
    EXPECT_TRUE(same_direction_and_norm("momentum " + n, got.velocity[i].values, want.velocity[i].values, kMixedCosine,
                                        kMixedNormTol));
  }
  for (size_t i = 0; i < got.buffers.size(); ++i) {
    const std::string& n = want.buffers[i].name;
    if (n.ends_with("num_batches_tracked")) {
      EXPECT_TRUE(near(n, got.buffers[i].values, want.buffers[i].values, 0));
    } else {
      EXPECT_TRUE(
          same_direction_and_norm(n, got.buffers[i].values, want.buffers[i].values, kMixedCosine, kMixedNormTol));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuResNetStep,
                         ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16, DType::kF16),
                                            ::testing::ValuesIn(kNets)),
                         [](const ::testing::TestParamInfo<std::tuple<DType, NetCase>>& info) {
                           return std::string(dtype_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param).name;
                         });

// gpu.deterministic: two identical steps give the same bits (logits,
// gradients, updated weights), in bf16 where cuDNN's fastest backward
// algorithms would otherwise add with atomics. A fresh backend, so the
// shared ones keep the default.
TEST_F(GpuTest, DeterministicStepsRepeatBitForBit) {
  BackendOptions o;
  o.device = "cuda";
  o.precision = DType::kBF16;
  o.workspace_bytes = size_t(256) << 20;
  o.deterministic = true;
  std::unique_ptr<Backend> be = make_backend(o);
  const NetCase& c = kNets[1];  // resnet18: max pooling and projection shortcuts too
  const StepResult a = run_step(*be, c, 1.f), b = run_step(*be, c, 1.f);
  EXPECT_TRUE(near("logits", b.logits, a.logits, 0));
  EXPECT_EQ(b.loss.loss, a.loss.loss);
  for (size_t i = 0; i < a.grads.size(); ++i) {
    EXPECT_TRUE(near("grad " + a.grads[i].name, b.grads[i].values, a.grads[i].values, 0));
    EXPECT_TRUE(near("updated " + a.weights[i].name, b.weights[i].values, a.weights[i].values, 0));
  }
}

}  // namespace
}  // namespace rn::gpu_test
