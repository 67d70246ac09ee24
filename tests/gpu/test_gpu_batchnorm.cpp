// Batch normalisation on the CUDA backend against the CPU backend, for every
// BnTail, with batch statistics and with global (frozen) statistics:
// forward_training (y, mean, var), backward (dx, dgamma, dbeta and, with
// kAddRelu, dz) and forward_inference. kAddRelu is checked against the
// CPU's plain bn composed here by hand with the add and the ReLU (and their
// backward: dz = dy masked by y > 0, which is also the upstream gradient of
// the bn), not against the CPU's own bn+add+relu.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <tuple>

#include "tests/gpu/gpu_test_util.h"

namespace rn::gpu_test {
namespace {

constexpr float kEps = 1e-5f;  // BatchNorm2d's default

struct BnCase {
  const char* name;
  int64_t n, c, h, w;
  Shape shape() const { return Shape{n, c, h, w}; }
};

std::ostream& operator<<(std::ostream& os, const BnCase& c) { return os << c.name; }

const char* tail_name(BnTail t) { return t == BnTail::kNone ? "None" : t == BnTail::kRelu ? "Relu" : "AddRelu"; }

struct BnData {
  HostVec x, z, dy, gamma, beta, mean, var;  // mean/var: the given statistics
};

BnData make_data(const BnCase& c, DType t, uint64_t seed) {
  Rng rng(seed);
  const size_t n = size_t(c.shape().numel()), ch = size_t(c.c);
  BnData d;
  d.x = rounded(t, rng.vec(n, -1.5,
                           2.5));  // off-centre, non-unit scale: the statistics matter
  d.z = rounded(t, rng.vec(n));
  d.dy = rounded(t, rng.vec(n));
  d.gamma = rng.vec(ch, 0.5, 1.5);
  d.beta = rng.vec(ch, -0.5, 0.5);
  d.mean = rng.vec(ch, -0.5, 0.5);
  d.var = rng.vec(ch, 0.5, 2.0);
  return d;
}

struct BnResult {
  HostVec y, mean, var, dx, dgamma, dbeta, dz, y_inference;
};

// The GPU: one kernel with the tail fused.
BnResult run_gpu(Backend& be, const BnCase& c, BnTail tail, bool global_stats, const BnData& d) {
  const DType t = be.activation_dtype();
  const Shape s = c.shape(), cs{c.c};
  const Layout l = be.activation_layout(c.c);
  const bool add = tail == BnTail::kAddRelu;
  auto k = be.make_batchnorm(s, l, t, kEps, tail, global_stats);
  const Tensor x = upload(be, d.x, s, l, t), dy = upload(be, d.dy, s, l, t);
  const Tensor z = add ? upload(be, d.z, s, l, t) : Tensor();
  const Tensor gamma = upload(be, d.gamma, cs, Layout::kNC), beta = upload(be, d.beta, cs, Layout::kNC);
  const Tensor given_mean = upload(be, d.mean, cs, Layout::kNC), given_var = upload(be, d.var, cs, Layout::kNC);
  // With global_stats the statistics are inputs; else outputs (poisoned).
  Tensor mean = global_stats ? upload(be, d.mean, cs, Layout::kNC) : allocate_poisoned(be, cs, Layout::kNC);
  Tensor var = global_stats ? upload(be, d.var, cs, Layout::kNC) : allocate_poisoned(be, cs, Layout::kNC);
  Tensor y = allocate_poisoned(be, s, l, t), dx = allocate_poisoned(be, s, l, t);
  Tensor dz = add ? allocate_poisoned(be, s, l, t) : Tensor();
  Tensor dgamma = allocate_poisoned(be, cs, Layout::kNC), dbeta = allocate_poisoned(be, cs, Layout::kNC);
  Tensor y_inf = allocate_poisoned(be, s, l, t);

  BnResult r;
  k->forward_training(x, gamma, beta, y, mean, var, add ? &z : nullptr);
  r.y = download(be, y);
  r.mean = download(be, mean);
  r.var = download(be, var);
  k->backward(x, dy, gamma, beta, mean, var, dx, dgamma, dbeta, add ? &dz : nullptr);
  r.dx = download(be, dx);
  r.dgamma = download(be, dgamma);
  r.dbeta = download(be, dbeta);
  if (add) r.dz = download(be, dz);
  k->forward_inference(x, gamma, beta, given_mean, given_var, y_inf, add ? &z : nullptr);
  r.y_inference = download(be, y_inf);
  return r;
}

// y = relu(y + z) on the host (the CPU reference's unfused tail).
HostVec add_relu(HostVec y, const HostVec& z) {
  for (size_t i = 0; i < y.size(); ++i) y[i] = std::max(y[i] + z[i], 0.f);
  return y;
}

// The CPU: kNone/kRelu as one kernel; kAddRelu as bn (kNone), then the add
// and ReLU, and backward through them by hand.
BnResult run_cpu(Backend& be, const BnCase& c, BnTail tail, bool global_stats, const BnData& d) {
  const Shape s = c.shape(), cs{c.c};
  const Layout l = be.activation_layout(c.c);
  const bool add = tail == BnTail::kAddRelu;
  auto k = be.make_batchnorm(s, l, DType::kF32, kEps, add ? BnTail::kNone : tail, global_stats);
  const Tensor x = upload(be, d.x, s, l);
  const Tensor gamma = upload(be, d.gamma, cs, Layout::kNC), beta = upload(be, d.beta, cs, Layout::kNC);
  const Tensor given_mean = upload(be, d.mean, cs, Layout::kNC), given_var = upload(be, d.var, cs, Layout::kNC);
  Tensor mean = upload(be, d.mean, cs, Layout::kNC), var = upload(be, d.var, cs, Layout::kNC);
  Tensor y = be.allocate(s, l), dx = be.allocate(s, l), y_inf = be.allocate(s, l);
  Tensor dgamma = be.allocate(cs, Layout::kNC), dbeta = be.allocate(cs, Layout::kNC);

  BnResult r;
  k->forward_training(x, gamma, beta, y, mean, var);
  r.y = download(be, y);
  r.mean = download(be, mean);
  r.var = download(be, var);
  HostVec g = d.dy;  // the bn's upstream gradient
  if (add) {
    r.y = add_relu(r.y, d.z);
    for (size_t i = 0; i < g.size(); ++i) g[i] = r.y[i] > 0 ? g[i] : 0.f;
    r.dz = g;
  }
  const Tensor dy = upload(be, g, s, l);
  k->backward(x, dy, gamma, beta, mean, var, dx, dgamma, dbeta);
  r.dx = download(be, dx);
  r.dgamma = download(be, dgamma);
  r.dbeta = download(be, dbeta);
  k->forward_inference(x, gamma, beta, given_mean, given_var, y_inf);
  r.y_inference = download(be, y_inf);
  if (add) r.y_inference = add_relu(r.y_inference, d.z);
  return r;
}

using BnParam = std::tuple<DType, BnCase, BnTail, bool>;

class GpuBatchNorm : public GpuTestWithParam<BnParam> {};

// Tolerance: storage_tol (gpu_test_util.h) for every output, the fp32 ones
// (statistics, dgamma, dbeta) included in mixed precision: they are fp32
// sums over exactly the same inputs, but cuDNN's NHWC kernels may keep an
// intermediate (the normalised value) in the storage type, one rounding.
// A ReLU mask can only differ where a pre-activation is within fp32 noise
// (~1e-6) of zero: with < 4000 elements of density ~0.4 there, the chance
// is ~1e-3 per case (and it is a property of the data: deterministic).
TEST_P(GpuBatchNorm, MatchesCpu) {
  const auto& [t, c, tail, global_stats] = GetParam();
  Backend& g = gpu(t);
  const BnData d = make_data(c, t, 3000 + uint64_t(c.c * 7 + c.h));
  const BnResult want = run_cpu(cpu(), c, tail, global_stats, d);
  const BnResult got = run_gpu(g, c, tail, global_stats, d);
  const double tol = storage_tol(t);
  const Shape s = c.shape();
  EXPECT_TRUE(near("bn train y", got.y, want.y, tol, s));
  if (global_stats) {
    // Inputs then: forward_training must leave them as they were.
    EXPECT_TRUE(near("bn given mean (unchanged)", got.mean, d.mean, 0));
    EXPECT_TRUE(near("bn given var (unchanged)", got.var, d.var, 0));
  } else {
    EXPECT_TRUE(near("bn batch mean", got.mean, want.mean, tol));
    EXPECT_TRUE(near("bn batch var (biased)", got.var, want.var, tol));
  }
  EXPECT_TRUE(near("bn dx", got.dx, want.dx, tol, s));
  EXPECT_TRUE(near("bn dgamma", got.dgamma, want.dgamma, tol));
  EXPECT_TRUE(near("bn dbeta", got.dbeta, want.dbeta, tol));
  if (tail == BnTail::kAddRelu) {
    EXPECT_TRUE(near("bn dz", got.dz, want.dz, tol, s));
  }
  EXPECT_TRUE(near("bn inference y", got.y_inference, want.y_inference, tol, s));
}

std::string param_name(const ::testing::TestParamInfo<BnParam>& info) {
  const auto& [t, c, tail, global_stats] = info.param;
  return std::string(dtype_name(t)) + "_" + c.name + "_" + tail_name(tail) + (global_stats ? "_GlobalStats" : "");
}

// fp32 adds odd channel counts (the reference mode must take any shape);
// the mixed-precision cases keep to channels in multiples of 8, as every
// ResNet has, which cuDNN's NHWC batch-norm kernels are made for.
const BnCase kAnyCases[] = {
    {"Odd5Channels", 3, 5, 4, 3},
    {"SingleImage", 1, 16, 7, 5},
};
const BnCase kMixedCases[] = {
    {"Wide", 2, 64, 5, 7},
    {"OnePixel", 8, 32, 1, 1},
    {"Batch3", 3, 16, 6, 6},
};

INSTANTIATE_TEST_SUITE_P(Fp32, GpuBatchNorm,
                         ::testing::Combine(::testing::Values(DType::kF32), ::testing::ValuesIn(kAnyCases),
                                            ::testing::Values(BnTail::kNone, BnTail::kRelu, BnTail::kAddRelu),
                                            ::testing::Bool()),
                         param_name);
INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuBatchNorm,
                         ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16, DType::kF16),
                                            ::testing::ValuesIn(kMixedCases),
                                            ::testing::Values(BnTail::kNone, BnTail::kRelu, BnTail::kAddRelu),
                                            ::testing::Bool()),
                         param_name);

}  // namespace
}  // namespace rn::gpu_test
