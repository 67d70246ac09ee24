// Shared helpers of the layer gradient checks (test_grad_*.cpp): moving
// double reference data into engine tensors and back, and comparing with the
// reference.
//
// The recipe is the one at the top of tests/reference/finite_diff.h: the
// engine's forward output is compared with the double reference forward; the
// engine's backward is run with dy = r (fixed random projection weights) and
// its gradients are compared with central differences of
// L(theta) = sum_i r_i * ref_forward(theta)_i.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/reference/finite_diff.h"
#include "tests/reference/ref_ops.h"
#include "trainer/backend/backend.h"
#include "trainer/nn/param_store.h"

namespace rn::test {

using ref::Vec;

// Tolerance on compare()'s max relative error (|a - b| / max(1e-3, |a| + |b|))
// between an fp32 engine result and the double reference / finite
// differences. fp32 has a unit roundoff of 6e-8; the engine's sums run over
// at most a few hundred terms of magnitude ~1 in these tests, so a correct
// kernel stays around 1e-6 .. 1e-5 relative (absolute error ~1e-7 .. 1e-6
// against the 1e-3 floor for tiny values). 1e-3 leaves room for the
// worst-conditioned outputs (BN backward subtracts means of dy and dy*xhat,
// which cancels) while any real bug (wrong index, sign, layout, missing
// term) gives O(1) errors. Observed maximum over all checks: ~2e-4 (an
// output of the composite residual block near the 1e-3 floor).
constexpr double kTol = 1e-3;

// Margin kept between ReLU / max-pool kinks and the data (finite_diff.h's
// guards). The FD step is 1e-6 and moves a pre-activation by at most a few
// times that, so 1e-4 keeps every FD evaluation on one side of each kink,
// and it is also far above the fp32 engine's error on the pre-activation, so
// the engine's ReLU mask agrees with the reference's.
constexpr double kKinkMargin = 1e-4;

inline std::vector<int> dims(const Shape& s) {
  std::vector<int> d;
  for (int64_t v : s) d.push_back(static_cast<int>(v));
  return d;
}

// Writes reference data (NCHW / row-major, fp32-representable) into a tensor
// of any layout.
inline void set_tensor(Backend& be, Tensor& t, const Vec& v) {
  ASSERT_EQ(static_cast<int64_t>(v.size()), t.numel()) << "host data size vs tensor " << t.shape().str();
  const std::vector<float> f = ref::to_float(v);
  be.from_host(f.data(), t);
  be.synchronize();
}

inline Tensor upload(Backend& be, const Vec& v, const Shape& s, Layout l) {
  Tensor t = be.allocate(s, l);
  set_tensor(be, t, v);
  return t;
}

// Plain NCHW (or row-major) copy of a tensor in any layout.
inline std::vector<float> download(Backend& be, const Tensor& t) {
  be.synchronize();
  std::vector<float> h(static_cast<size_t>(t.numel()));
  be.to_host(t, h.data());
  be.synchronize();
  return h;
}

// Upstream gradient dy = r in the same shape and layout as the forward output.
inline Tensor make_dy(Backend& be, const Tensor& y, const Vec& r) { return upload(be, r, y.shape(), y.layout()); }

inline Param& find_param(ParamStore& ps, const std::string& name) {
  for (auto& p : ps.params())
    if (p.name == name) return p;
  throw std::invalid_argument("no parameter named " + name);
}

inline StateBuffer& find_buffer(ParamStore& ps, const std::string& name) {
  for (auto& b : ps.buffers())
    if (b.name == name) return b;
  throw std::invalid_argument("no buffer named " + name);
}

// Prints the observed errors when RN_GRAD_VERBOSE is set (to report margins).
inline void log_error(const std::string& what, const ref::Comparison& c) {
  static const bool verbose = std::getenv("RN_GRAD_VERBOSE") != nullptr;
  if (verbose) std::printf("  [err] %-55s rel %.2e  abs %.2e  (n=%zu)\n", what.c_str(), c.max_rel_err, c.max_abs_err,
                           c.size);
}

// compare(a, b) within kTol (or `tol`); the failure message names the
// quantity and gives Comparison::str() with the worst index per axis.
inline ::testing::AssertionResult close(const std::string& what, const std::vector<float>& a, const Vec& b,
                                        const std::vector<int>& shape = {}, double tol = kTol) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << what << ": size " << a.size() << " vs reference " << b.size();
  const ref::Comparison c = ref::compare(a, b);
  log_error(what, c);
  if (c.max_rel_err <= tol) return ::testing::AssertionSuccess();
  char tol_str[32];
  std::snprintf(tol_str, sizeof tol_str, "%.1e", tol);
  return ::testing::AssertionFailure() << what << " differs from the reference (tolerance " << tol_str
                                       << "): " << c.str(shape);
}

}  // namespace rn::test
