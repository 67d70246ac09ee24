// Data-parallel training steps on the GPU against the same steps on the CPU,
// at 2 and 3 ranks (which may share one GPU): every rank starts from its own
// initialisation, DataParallel broadcasts rank 0's, each rank trains on its
// own batch, and gradients are averaged during backward (buckets fenced on
// the compute stream) by the device all-reduce under test. After two SGD
// steps the GPU replicas must hold the same bits on every rank (the weight
// hash check) and the weights, momentum and averaged BN statistics the CPU
// path (host ring, oneDNN backend) computed from the same start and data.
//
// Tolerances are those of the single-GPU whole-step test
// (tests/gpu/test_gpu_resnet.cpp): fp32 reference mode 1e-4 relative to each
// tensor's largest magnitude (momentum: to the model's, see below); bf16
// weights 1e-2 (a step moves each weight by lr times an update whose bf16
// error that test bounds; two steps add two such moves, still an order of
// magnitude inside 1e-2 for lr 0.05), momentum and BN statistics by
// direction (cosine > 0.99) and norm (within 5%).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu_mpi/mpi_gpu_fixture.h"
#include "trainer/model/resnet.h"
#include "trainer/nn/softmax_cross_entropy.h"
#include "trainer/optim/sgd.h"
#include "trainer/train/data_parallel.h"

namespace rn::gpu_test {
namespace {

constexpr int64_t kClasses = 10, kImage = 32, kBatch = 4;
constexpr int kSteps = 2;
constexpr float kLr = 0.05f;
// Mixed precision, as tests/gpu/test_gpu_resnet.cpp bounds a whole step.
constexpr double kMixedCosine = 0.99, kMixedNormTol = 5e-2, kMixedWeightTol = 1e-2;

struct Named {
  std::string name;
  HostVec values;
};

struct Replica {
  std::vector<Named> weights, velocity, buffers;
};

// kSteps data-parallel steps of cifar-resnet20 (shortcut A) on `be`, with
// gradients averaged by `algo`. Rank r initialises with its own seeds and
// trains on its own data, so both the broadcast and the averaging matter.
Replica train(Backend& be, comm::Communicator& comm, comm::Algorithm algo) {
  ArchSpec arch;
  if (!lookup_arch("cifar-resnet20", &arch)) throw std::invalid_argument("no architecture cifar-resnet20");
  const uint64_t rank = uint64_t(comm.rank());
  ResNet net(be, arch, kClasses, ShortcutType::kPadIdentity);
  net.set_output_pool(&net.grad_pool());  // as resnet-train
  net.initialize(/*seed=*/17 + rank, /*zero_init_residual=*/false);
  // BN beta ~ U(2, 3) keeps ReLU inputs away from the kink (see
  // test_gpu_resnet.cpp: otherwise fp32 noise may flip a mask).
  Rng rng(18 + rank);
  for (auto& p : net.params().params()) {
    if (p.shape.rank() != 1 || p.name.rfind("fc.", 0) == 0) continue;
    const bool gamma = p.name.ends_with(".weight");
    set(be, p.value, rng.vec(size_t(p.shape.numel()), gamma ? 0.8 : 2.0, gamma ? 1.2 : 3.0));
  }
  DataParallelOptions dpo;
  dpo.algorithm = algo;
  dpo.segment_bytes = 64 * 1024;
  dpo.sync.bucket_bytes = 64 * 1024;  // several buckets: overlap with backward is exercised
  DataParallel dp(comm, net, dpo);
  dp.broadcast_weights();
  Sgd opt(be, net.params(),
          SgdOptions{/*momentum=*/0.9f, /*nesterov=*/false, /*weight_decay=*/5e-4f,
                     /*no_decay_bn_bias=*/true});
  SoftmaxCrossEntropy loss(be, /*label_smoothing=*/0.1f);

  const Shape xs{kBatch, 3, kImage, kImage};
  Tensor x = be.allocate(xs, Layout::kNCHW);
  for (int step = 0; step < kSteps; ++step) {
    Rng data(1000 * rank + uint64_t(step));
    set(be, x, data.vec(size_t(xs.numel())));
    std::vector<int32_t> labels(kBatch);
    for (int64_t i = 0; i < kBatch; ++i)
      labels[size_t(i)] = int32_t((rank * 3 + uint64_t(i) + uint64_t(step)) % kClasses);
    loss.forward_backward(net.forward(x, Mode::kTrain), labels.data());
    dp.begin_backward();
    net.backward(loss.grad());
    dp.finish_backward();
    opt.step(kLr);
    dp.check_weights(step + 1);  // throws naming the ranks whose replica differs
  }
  dp.average_buffers();

  Replica r;
  ParamStore& ps = net.params();
  for (auto& p : ps.params()) {
    r.weights.push_back({p.name, download(be, p.value)});
    r.velocity.push_back({p.name, download(be, opt.velocity().slice(p.offset, Shape{p.shape.numel()}, Layout::kNC))});
  }
  for (auto& b : ps.buffers()) r.buffers.push_back({b.name, download(be, b.value)});
  return r;
}

class GpuDataParallel : public MpiGpuTest, public ::testing::WithParamInterface<std::tuple<DType, comm::Algorithm>> {};

TEST_P(GpuDataParallel, StepsMatchTheCpuPath) {
  const auto [precision, algo] = GetParam();
  static Backend* host = make_cpu_backend(1).release();  // never destroyed (see gpu_test_util.h)
  BackendOptions o;
  o.device = "cuda";
  o.cuda_device = device_;
  o.precision = precision;
  o.workspace_bytes = size_t(128) << 20;  // ranks may share the GPU
  std::unique_ptr<Backend> gpu = make_backend(o);

  const Replica want = train(*host, *comm_, comm::Algorithm::kRing);
  const Replica got = train(*gpu, *comm_, algo);
  ASSERT_EQ(got.weights.size(), want.weights.size());
  ASSERT_EQ(got.buffers.size(), want.buffers.size());
  const std::string at = " (rank " + std::to_string(comm_->rank()) + " of " + std::to_string(comm_->size()) + ")";
  // fp32 momentum: 1e-4 of the largest momentum of the whole model, not of
  // each tensor. A BN bias gradient is a sum over the batch that cancels to
  // ~1e-3 of its terms, so the fp32 rounding of those terms (and of the sum
  // over ranks, whose order differs between algorithms) is ~1e-4 of such a
  // tensor's own maximum: the CPU path alone, ring against mpi at 3 ranks,
  // differs by 1.2e-4 there. A wrong or stale bucket moves momentum by the
  // size of a gradient, far above 1e-4 of the largest.
  double v_max = 0;
  for (const Named& v : want.velocity)
    for (float x : v.values) v_max = std::max(v_max, double(std::fabs(x)));
  for (size_t i = 0; i < want.weights.size(); ++i) {
    const std::string& n = want.weights[i].name;
    if (precision == DType::kF32) {
      EXPECT_TRUE(near("weight " + n + at, got.weights[i].values, want.weights[i].values, kF32Tol));
      EXPECT_TRUE(within_bound("momentum " + n + at, got.velocity[i].values, want.velocity[i].values,
                               std::vector<double>(want.velocity[i].values.size(), kF32Tol * v_max)));
    } else {
      EXPECT_TRUE(near("weight " + n + at, got.weights[i].values, want.weights[i].values, kMixedWeightTol));
      EXPECT_TRUE(same_direction_and_norm("momentum " + n + at, got.velocity[i].values, want.velocity[i].values,
                                          kMixedCosine, kMixedNormTol));
    }
  }
  for (size_t i = 0; i < want.buffers.size(); ++i) {
    const std::string& n = want.buffers[i].name;
    if (precision == DType::kF32 || n.ends_with("num_batches_tracked")) {
      EXPECT_TRUE(near(n + at, got.buffers[i].values, want.buffers[i].values, kF32Tol));
    } else {
      EXPECT_TRUE(
          same_direction_and_norm(n + at, got.buffers[i].values, want.buffers[i].values, kMixedCosine, kMixedNormTol));
    }
  }
  gpu.reset();
}

INSTANTIATE_TEST_SUITE_P(PrecisionsAndAlgorithms, GpuDataParallel,
                         ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16),
                                            ::testing::Values(comm::Algorithm::kRing, comm::Algorithm::kMpi)),
                         [](const ::testing::TestParamInfo<std::tuple<DType, comm::Algorithm>>& info) {
                           return std::string(dtype_name(std::get<0>(info.param))) + "_" +
                                  comm::algorithm_name(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace rn::gpu_test
