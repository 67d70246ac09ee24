// Gradient checks on the GPU itself: directional derivatives of convolution
// and batch norm in fp32 reference mode.
//
// The exact gradient checks (central differences per element in double
// precision) are the CPU suite's (tests/unit/test_grad_*.cpp), and the GPU
// backend has no double mode: exactness on the GPU is established by the
// comparisons with the CPU backend at 1e-4 (test_gpu_conv.cpp,
// test_gpu_batchnorm.cpp). What fp32 allows here is a check that does not
// lean on the CPU at all: along a random direction d, with f = <r, y> for a
// fixed random r (so backward runs with dy = r),
//   f(theta + h d) - f(theta - h d)  ~=  <grad f, 2 h d>.
// In fp32 an element-by-element difference would drown in rounding (a step
// small enough for the truncation error moves y by less than its rounding),
// but one difference along a whole direction sums the signal over every
// element: with h = 1e-2 of theta's RMS the fp32 rounding of y (~sqrt(K)
// 2^-24 relative, K <= 576) costs ~sqrt(K) 2^-24 / h < 2e-4 relative, and
// the truncation error (zero for the linear convolution and the frozen BN,
// O(h^2) ~ 1e-4 for training BN) about as much. Tolerances: 2e-3 for the
// linear maps, 1e-2 for training BN; a wrong gradient (missing term, wrong
// scale, transposed index) misses by O(1). Tails with a ReLU are left out:
// a step of 1e-2 moves ~1% of the pre-activations across the kink, which
// breaks the expansion; the CPU comparison covers them.
#include <gtest/gtest.h>

#include <string>

#include "tests/gpu/gpu_test_util.h"

namespace rn::gpu_test {
namespace {

constexpr double kStep = 1e-2;       // h, relative to the RMS of what is perturbed
constexpr double kLinearTol = 2e-3;  // maps linear in what is perturbed
constexpr double kNonlinearTol = 1e-2;

class GpuDirectional : public GpuTest {
 protected:
  Backend& be() { return gpu(DType::kF32); }
};

TEST_F(GpuDirectional, Convolution) {
  Backend& b = be();
  struct Case {
    const char* name;
    ConvGeom g;
  };
  for (const Case& c : {Case{"stem 7x7/2", {2, 3, 19, 17, 8, 7, 2, 3}}, Case{"3x3/2", {2, 16, 9, 9, 32, 3, 2, 1}},
                        Case{"1x1/2", {3, 16, 7, 9, 32, 1, 2, 0}}, Case{"3x3/1 wide", {1, 64, 8, 8, 64, 3, 1, 1}}}) {
    SCOPED_TRACE(c.name);
    const ConvGeom& g = c.g;
    const Shape xs{g.n, g.c_in, g.h_in, g.w_in}, ys{g.n, g.c_out, g.h_out(), g.w_out()};
    const Shape ws{g.c_out, g.c_in, g.kernel, g.kernel};
    const Layout xl = b.activation_layout(g.c_in), yl = b.activation_layout(g.c_out);
    Rng rng(13000 + uint64_t(g.c_in));
    const double bound = std::sqrt(3.0 / double(g.c_in * g.kernel * g.kernel));
    const HostVec x = rng.vec(size_t(xs.numel())), w = rng.vec(size_t(ws.numel()), -bound, bound);
    const HostVec r = rng.vec(size_t(ys.numel()));
    auto k = b.make_conv(g, xl, yl, true);
    Tensor xt = upload(b, x, xs, xl), wt = upload(b, w, ws, Layout::kNCHW);
    const Tensor rt = upload(b, r, ys, yl);
    Tensor y = b.allocate(ys, yl), dx = b.allocate(xs, xl), dw = b.allocate(ws, Layout::kNCHW);
    k->forward(xt, wt, y);
    k->backward_data(rt, wt, dx);
    k->backward_weights(xt, rt, dw);
    const HostVec gx = download(b, dx), gw = download(b, dw);

    auto f_x = [&](const HostVec& xv) {
      set(b, xt, xv);
      k->forward(xt, wt, y);
      return projected(download(b, y), r);
    };
    EXPECT_TRUE(directional_ok("conv dx", f_x, x, gx, kStep, kLinearTol, 1));
    set(b, xt, x);
    auto f_w = [&](const HostVec& wv) {
      set(b, wt, wv);
      k->forward(xt, wt, y);
      return projected(download(b, y), r);
    };
    EXPECT_TRUE(directional_ok("conv dw", f_w, w, gw, kStep, kLinearTol, 2));
  }
}

// Training BN (batch statistics: every output depends on every input of its
// channel, the hard part of the gradient) and frozen BN (given statistics:
// linear in x, gamma and beta).
TEST_F(GpuDirectional, BatchNorm) {
  Backend& b = be();
  const Shape s{3, 16, 5, 7}, cs{16};
  const Layout l = b.activation_layout(s[1]);
  for (const bool global_stats : {false, true}) {
    SCOPED_TRACE(global_stats ? "given statistics" : "batch statistics");
    Rng rng(14000 + global_stats);
    const HostVec x = rng.vec(size_t(s.numel()), -1.5, 2.5), r = rng.vec(size_t(s.numel()));
    const HostVec gamma = rng.vec(16, 0.5, 1.5), beta = rng.vec(16, -0.5, 0.5);
    const HostVec mean0 = rng.vec(16, -0.5, 0.5), var0 = rng.vec(16, 0.5, 2.0);
    auto k = b.make_batchnorm(s, l, DType::kF32, 1e-5f, BnTail::kNone, global_stats);
    Tensor xt = upload(b, x, s, l), gt = upload(b, gamma, cs, Layout::kNC), bt = upload(b, beta, cs, Layout::kNC);
    Tensor mean = upload(b, mean0, cs, Layout::kNC), var = upload(b, var0, cs, Layout::kNC);
    const Tensor rt = upload(b, r, s, l);
    Tensor y = b.allocate(s, l), dx = b.allocate(s, l), dg = b.allocate(cs, Layout::kNC),
           db = b.allocate(cs, Layout::kNC);
    k->forward_training(xt, gt, bt, y, mean, var);
    k->backward(xt, rt, gt, bt, mean, var, dx, dg, db);
    const HostVec gx = download(b, dx), ggamma = download(b, dg), gbeta = download(b, db);

    auto f = [&] {
      k->forward_training(xt, gt, bt, y, mean, var);
      return projected(download(b, y), r);
    };
    auto f_x = [&](const HostVec& v) {
      set(b, xt, v);
      return f();
    };
    auto f_gamma = [&](const HostVec& v) {
      set(b, gt, v);
      return f();
    };
    auto f_beta = [&](const HostVec& v) {
      set(b, bt, v);
      return f();
    };
    EXPECT_TRUE(directional_ok("bn dx", f_x, x, gx, kStep, global_stats ? kLinearTol : kNonlinearTol, 3));
    set(b, xt, x);
    EXPECT_TRUE(directional_ok("bn dgamma", f_gamma, gamma, ggamma, kStep, kLinearTol, 4));
    set(b, gt, gamma);
    EXPECT_TRUE(directional_ok("bn dbeta", f_beta, beta, gbeta, kStep, kLinearTol, 5));
  }
}

}  // namespace
}  // namespace rn::gpu_test
