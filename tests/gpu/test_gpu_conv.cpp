// Convolution on the CUDA backend against the CPU backend: forward,
// backward-data and backward-weights for the geometries a ResNet uses (7x7/2
// stem, 3x3/1, 3x3/2, 1x1/1, 1x1/2), odd spatial sizes and channel counts,
// batch 1 and 3, in fp32 reference mode and in bf16/fp16 NHWC mixed
// precision (tolerances: gpu_test_util.h).
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <tuple>

#include "tests/gpu/gpu_test_util.h"

namespace rn::gpu_test {
namespace {

struct ConvCase {
  const char* name;
  int64_t n, c_in, h, w, c_out, kernel, stride, pad;
  ConvGeom geom() const { return ConvGeom{n, c_in, h, w, c_out, kernel, stride, pad}; }
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) { return os << c.name; }

const ConvCase kCases[] = {
    {"Stem7x7s2", 3, 3, 23, 21, 16, 7, 2, 3},     {"Stem7x7s2Batch1", 1, 3, 32, 32, 64, 7, 2, 3},
    {"Conv3x3s1", 3, 16, 9, 11, 16, 3, 1, 1},     {"Conv3x3s1Wide", 1, 64, 8, 8, 64, 3, 1, 1},
    {"Conv3x3s2Odd", 1, 16, 15, 13, 32, 3, 2, 1}, {"Conv1x1s1", 3, 32, 7, 7, 16, 1, 1, 0},
    {"Conv1x1s2Odd", 3, 16, 9, 7, 32, 1, 2, 0},   {"Conv3x3OddChannels", 1, 5, 5, 5, 7, 3, 1, 1},
};

struct ConvData {
  HostVec x, w, dy;
};

// x, dy ~ U(-1, 1), w ~ U(-b, b) with b = sqrt(3 / fan_in) (unit output
// variance); activation-typed inputs rounded to `t` (see gpu_test_util.h),
// the weights too unless round_weights is false.
ConvData make_data(const ConvCase& c, DType t, bool round_weights, uint64_t seed) {
  const ConvGeom g = c.geom();
  Rng rng(seed);
  const double b = std::sqrt(3.0 / double(c.c_in * c.kernel * c.kernel));
  ConvData d;
  d.x = rounded(t, rng.vec(size_t(g.n * g.c_in * g.h_in * g.w_in)));
  d.w = rng.vec(size_t(g.c_out * g.c_in * g.kernel * g.kernel), -b, b);
  if (round_weights) d.w = rounded(t, d.w);
  d.dy = rounded(t, rng.vec(size_t(g.n * g.c_out * g.h_out() * g.w_out())));
  return d;
}

struct ConvResult {
  HostVec y, dx, dw;
};

// One forward, backward-data and backward-weights on `be`, with the tensors
// in the layouts and dtype a Conv2d layer gives them there (activations in
// activation_layout/activation_dtype, weights fp32 OIHW).
ConvResult run_conv(Backend& be, const ConvGeom& g, const ConvData& d) {
  const DType t = be.activation_dtype();
  const Layout xl = be.activation_layout(g.c_in), yl = be.activation_layout(g.c_out);
  const Shape xs{g.n, g.c_in, g.h_in, g.w_in}, ys{g.n, g.c_out, g.h_out(), g.w_out()};
  const Shape ws{g.c_out, g.c_in, g.kernel, g.kernel};
  auto k = be.make_conv(g, xl, yl, /*need_dx=*/true);
  const Tensor x = upload(be, d.x, xs, xl, t), w = upload(be, d.w, ws, Layout::kNCHW);
  const Tensor dy = upload(be, d.dy, ys, yl, t);
  Tensor y = allocate_poisoned(be, ys, yl, t), dx = allocate_poisoned(be, xs, xl, t);
  Tensor dw = allocate_poisoned(be, ws, Layout::kNCHW);
  k->forward(x, w, y);
  k->backward_data(dy, w, dx);
  k->backward_weights(x, dy, dw);
  return {download(be, y), download(be, dx), download(be, dw)};
}

class GpuConv : public GpuTestWithParam<std::tuple<DType, ConvCase>> {};

// Inputs and weights representable in the storage type: fp32 1e-4, mixed
// precision 2u (gpu_test_util.h).
TEST_P(GpuConv, MatchesCpu) {
  const auto& [t, c] = GetParam();
  const ConvGeom g = c.geom();
  const ConvData d = make_data(c, t, /*round_weights=*/true, 1000 + uint64_t(g.c_in * 31 + g.h_in));
  const ConvResult want = run_conv(cpu(), g, d);
  const ConvResult got = run_conv(gpu(t), g, d);
  const double tol = storage_tol(t);
  EXPECT_TRUE(near("conv y", got.y, want.y, tol, Shape{g.n, g.c_out, g.h_out(), g.w_out()}));
  EXPECT_TRUE(near("conv dx", got.dx, want.dx, tol, Shape{g.n, g.c_in, g.h_in, g.w_in}));
  EXPECT_TRUE(near("conv dw", got.dw, want.dw, tol, Shape{g.c_out, g.c_in, g.kernel, g.kernel}));
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<DType, ConvCase>>& info) {
  return std::string(dtype_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuConv,
                         ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16, DType::kF16),
                                            ::testing::ValuesIn(kCases)),
                         param_name);

// Mixed precision with fp32 master weights, as in training: the GPU rounds
// the weights to the storage type itself. The CPU computes with the fp32
// weights, so here the difference is not one output rounding but a rounding
// of every weight too. A rigorous elementwise bound: each product x_i * w_i
// (x exact in the storage type) is off by at most u |x_i w_i| after w_i is
// rounded, so the sum by at most u * A_j with A_j = sum_i |x_i| |w_i|; the
// output rounding adds u (|y_j| + u A_j); fp32 accumulation, any order, in
// both backends adds at most 2 K 2^-24 A_j, which for K <= 576 here is
// <= 0.02 u A_j (bf16) and <= 0.15 u A_j (fp16). So
//   |gpu_j - cpu_j| <= 1.2 u (|cpu_j| + A_j),
// where A = conv(|x|, |w|) (and conv_transpose(|dy|, |w|) for dx) is
// computed by the CPU backend. It fails for a GPU that truncates instead of
// rounding the weights (error up to 2u), or accumulates in the storage type.
class GpuConvMasterWeights : public GpuTestWithParam<std::tuple<DType, ConvCase>> {};

TEST_P(GpuConvMasterWeights, RoundsFp32WeightsOnce) {
  const auto& [t, c] = GetParam();
  const ConvGeom g = c.geom();
  const ConvData d = make_data(c, t, /*round_weights=*/false, 2000 + uint64_t(g.c_in * 31 + g.h_in));
  const ConvResult want = run_conv(cpu(), g, d);
  const ConvResult got = run_conv(gpu(t), g, d);
  const ConvResult a = run_conv(cpu(), g, ConvData{abs_of(d.x), abs_of(d.w), abs_of(d.dy)});
  const double u = unit_roundoff(t);
  auto bound = [&](const HostVec& ref, const HostVec& abs_sum) {
    std::vector<double> b(ref.size());
    for (size_t i = 0; i < b.size(); ++i) b[i] = 1.2 * u * (std::fabs(double(ref[i])) + double(abs_sum[i]));
    return b;
  };
  EXPECT_TRUE(within_bound("conv y (fp32 weights)", got.y, want.y, bound(want.y, a.y),
                           Shape{g.n, g.c_out, g.h_out(), g.w_out()}));
  EXPECT_TRUE(within_bound("conv dx (fp32 weights)", got.dx, want.dx, bound(want.dx, a.dx),
                           Shape{g.n, g.c_in, g.h_in, g.w_in}));
  // dw does not read the weights: x and dy are exact, so one output rounding.
  EXPECT_TRUE(near("conv dw", got.dw, want.dw, storage_tol(t), Shape{g.c_out, g.c_in, g.kernel, g.kernel}));
}

INSTANTIATE_TEST_SUITE_P(Mixed, GpuConvMasterWeights,
                         ::testing::Combine(::testing::Values(DType::kBF16, DType::kF16), ::testing::ValuesIn(kCases)),
                         param_name);

}  // namespace
}  // namespace rn::gpu_test
