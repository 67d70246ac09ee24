// Shared helpers of the GPU test suite (tests/gpu): the skip where no GPU is
// visible, the backends under test, host test data (random, rounded to bf16
// or fp16), moving data in and out of tensors of any layout and dtype, and
// the comparisons with their failure messages.
//
// Every GPU test runs an op on the CUDA backend and on the CPU (oneDNN)
// backend with the same inputs and compares. The CPU backend is the
// reference: the CPU suite checks its ops against a double-precision
// reference and central finite differences (tests/unit/test_grad_*.cpp), so
// agreeing with it is agreeing with the exact result.
//
// Tolerances (one rule for the whole suite, stated once here):
//  * fp32 reference mode (BackendOptions::precision kF32: NCHW fp32, no
//    TF32): max|gpu - cpu| / max|cpu| < 1e-4 (kF32Tol), the bound.
//    Two correct fp32 implementations differ by ~sqrt(K) * 2^-24 relative
//    (K: terms in a sum, at most a few thousand here), i.e. ~1e-6.
//  * mixed precision (bf16, fp16 activations): the tests round every
//    activation-typed input to the storage type on the host first, so both
//    backends compute on exactly the same values. The GPU then computes in
//    fp32 and rounds each output once to the storage type: |error| <= u *
//    |out| <= u * max|out| with u = 2^-9 (bf16, 8 significant bits) or 2^-11
//    (fp16). fp32 accumulation in another order adds ~sqrt(K) * 2^-24
//    relative, negligible. The bound used is 2u relative to max|cpu|
//    (storage_tol): a factor 2 of margin, while a wrong index, layout or
//    missing term gives O(1) errors and a sum accumulated in the storage
//    type gives ~sqrt(K) * u (K = 27..576 here: 5u..24u), both far above.
//    Ops whose inputs are not pre-rounded (fp32 weights, a whole network)
//    state their own bound where they are tested.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/backend/backend.h"
#include "trainer/backend/cuda/make_cuda_backend.h"

namespace rn {

// Readable test parameters in gtest's output (found by argument-dependent lookup).
inline void PrintTo(DType t, std::ostream* os) { *os << dtype_name(t); }
inline void PrintTo(const Shape& s, std::ostream* os) { *os << s.str(); }
inline void PrintTo(BnTail t, std::ostream* os) {
  *os << (t == BnTail::kNone ? "bn" : t == BnTail::kRelu ? "bn+relu" : "bn+add+relu");
}

}  // namespace rn

namespace rn::gpu_test {

using HostVec = std::vector<float>;

// --- the GPU and the backends under test ---

// Whether this process sees a CUDA device, and why not (asked once).
inline bool gpu_present(std::string* why) {
  static std::string why_none;
  static const int count = visible_cuda_devices(&why_none);
  if (why) *why = why_none;
  return count > 0;
}

// First statement of every GPU test (or of its fixture's SetUp).
#define RN_SKIP_WITHOUT_GPU()                                                    \
  do {                                                                           \
    std::string why_;                                                            \
    if (!::rn::gpu_test::gpu_present(&why_))                                     \
      GTEST_SKIP() << "no CUDA device (" << why_ << "): the GPU tests need one"; \
  } while (0)

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override { RN_SKIP_WITHOUT_GPU(); }
};

template <class P>
class GpuTestWithParam : public ::testing::TestWithParam<P> {
 protected:
  void SetUp() override { RN_SKIP_WITHOUT_GPU(); }
};

// The reference backend. Like the backends below it is made once per
// process and never destroyed (static destructors may run after the CUDA
// runtime has shut down).
inline Backend& cpu() {
  static Backend* be = make_cpu_backend(2).release();
  return *be;
}

// The CUDA backend on device 0 in `precision` (kF32: the NCHW fp32
// reference mode; kBF16/kF16: NHWC mixed precision). A modest workspace
// cap: ctest may run several test processes on one GPU at once.
inline Backend& gpu(DType precision) {
  static Backend* backends[3] = {nullptr, nullptr, nullptr};
  Backend*& be = backends[static_cast<int>(precision)];
  if (!be) {
    BackendOptions o;
    o.device = "cuda";
    o.cuda_device = 0;
    o.precision = precision;
    o.workspace_bytes = size_t(256) << 20;
    be = make_backend(o).release();
  }
  return *be;
}

// --- host data ---

// Deterministic on every platform: doubles come from the top 53 bits of the
// 64-bit stream here, not from std::uniform_real_distribution.
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t next() { return g_(); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * double(g_() >> 11) * 0x1.0p-53; }
  HostVec vec(size_t n, double lo = -1.0, double hi = 1.0) {
    HostVec v(n);
    for (auto& x : v) x = static_cast<float>(uniform(lo, hi));
    return v;
  }

 private:
  std::mt19937_64 g_;
};

// Round to nearest even into the storage type (identity for fp32): what the
// GPU's conversions do (__float2bfloat16, __float2half).
inline float round_to(DType t, float v) {
  if (t == DType::kF16) return static_cast<float>(static_cast<_Float16>(v));
  if (t == DType::kBF16 && !std::isnan(v)) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    b += 0x7fffu + ((b >> 16) & 1u);
    b &= 0xffff0000u;
    std::memcpy(&v, &b, 4);
  }
  return v;
}

inline HostVec rounded(DType t, HostVec v) {
  for (auto& x : v) x = round_to(t, x);
  return v;
}

// Unit roundoff of the storage type: half the distance between neighbouring
// values, relative (2^-(significand bits)).
inline double unit_roundoff(DType t) { return t == DType::kBF16 ? 0x1.0p-9 : t == DType::kF16 ? 0x1.0p-11 : 0x1.0p-24; }

constexpr double kF32Tol = 1e-4;
// See the header comment: 1e-4 in fp32, 2u in mixed precision.
inline double storage_tol(DType t) { return t == DType::kF32 ? kF32Tol : 2 * unit_roundoff(t); }

inline HostVec abs_of(HostVec v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

// sum_i r_i * y_i in double (the scalar the directional checks differentiate).
inline double projected(const HostVec& y, const HostVec& r) {
  if (y.size() != r.size()) throw std::invalid_argument("projected: sizes differ");
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += double(r[i]) * double(y[i]);
  return s;
}

inline double rms(const HostVec& v) {
  double s = 0;
  for (float x : v) s += double(x) * double(x);
  return v.empty() ? 0.0 : std::sqrt(s / double(v.size()));
}

// --- tensors ---

inline Layout plain_layout(const Shape& s) { return s.rank() == 4 ? Layout::kNCHW : Layout::kNC; }

// Writes plain NCHW (or row-major) host data into a tensor of any layout and
// dtype. to_host/from_host speak fp32, so a bf16/fp16 tensor is filled
// through an fp32 plain tensor and Backend::copy (which converts layout and
// dtype; the copy tests check it against host rounding).
inline void set(Backend& be, Tensor& t, const HostVec& v) {
  if (static_cast<int64_t>(v.size()) != t.numel())
    throw std::invalid_argument("set: " + std::to_string(v.size()) + " values for " + t.shape().str());
  if (t.dtype() == DType::kF32) {
    be.from_host(v.data(), t);
  } else {
    Tensor tmp = be.allocate(t.shape(), plain_layout(t.shape()));
    be.from_host(v.data(), tmp);
    be.copy(tmp, t);
  }
  be.synchronize();  // v and tmp must outlive the copies
}

inline Tensor upload(Backend& be, const HostVec& v, const Shape& s, Layout l, DType t = DType::kF32) {
  Tensor x = be.allocate(s, l, t);
  set(be, x, v);
  return x;
}

// Plain NCHW (or row-major) fp32 copy of a tensor of any layout and dtype.
inline HostVec download(Backend& be, const Tensor& t) {
  be.synchronize();
  HostVec h(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::kF32) {
    be.to_host(t, h.data());
  } else {
    Tensor tmp = be.allocate(t.shape(), plain_layout(t.shape()));
    be.copy(t, tmp);
    be.to_host(tmp, h.data());
  }
  be.synchronize();
  return h;
}

// Outputs are poisoned before a kernel runs, so a kernel that leaves part of
// one unwritten (or accumulates into it) produces NaNs, which fail any check.
inline void poison(Backend& be, Tensor& t) { be.fill(t, std::numeric_limits<float>::quiet_NaN()); }

inline Tensor allocate_poisoned(Backend& be, const Shape& s, Layout l, DType t = DType::kF32) {
  Tensor x = be.allocate(s, l, t);
  poison(be, x);
  return x;
}

// --- comparisons ---

// "[n, c, h, w]" of flat index i of a plain tensor of shape s ("[i]" without one).
inline std::string index_str(size_t i, const Shape& s) {
  if (s.rank() == 0) return fmt::format("[{}]", i);
  std::vector<int64_t> idx(static_cast<size_t>(s.rank()));
  int64_t rest = static_cast<int64_t>(i);
  for (int64_t d = s.rank() - 1; d >= 0; --d) {
    idx[size_t(d)] = rest % s[size_t(d)];
    rest /= s[size_t(d)];
  }
  return fmt::format("[{}]", fmt::join(idx, ", "));
}

struct Diff {
  double max_err = 0;    // max |got - want|
  double max_ref = 0;    // max |want|
  size_t worst = 0;      // where max_err is
  size_t nonfinite = 0;  // non-finite values in got
  size_t first_nonfinite = 0;
  double rel() const { return max_err / std::max(max_ref, 1e-30); }
};

inline Diff diff(const HostVec& got, const HostVec& want) {
  Diff d;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    d.max_ref = std::max(d.max_ref, double(std::fabs(want[i])));
    if (!std::isfinite(got[i])) {
      if (d.nonfinite++ == 0) d.first_nonfinite = i;
      continue;
    }
    const double e = std::fabs(double(got[i]) - double(want[i]));
    if (e > d.max_err) d.max_err = e, d.worst = i;
  }
  return d;
}

inline std::string fmt_double(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.3g", v);
  return s;
}

// max|got - want| / max|want| <= tol (tol 0: bitwise equal values), and
// every value finite. `shape` only labels the worst element.
inline ::testing::AssertionResult near(const std::string& what, const HostVec& got, const HostVec& want, double tol,
                                       const Shape& shape = Shape{}) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << what << ": " << got.size() << " values vs " << want.size() << " expected";
  const Diff d = diff(got, want);
  if (d.nonfinite)
    return ::testing::AssertionFailure() << what << ": " << d.nonfinite << " of " << got.size()
                                         << " values are not finite (unwritten output?), the first at "
                                         << index_str(d.first_nonfinite, shape) << " = " << got[d.first_nonfinite]
                                         << " (expected " << want[d.first_nonfinite] << ")";
  const bool ok = tol == 0 ? d.max_err == 0 : d.rel() <= tol;
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max|gpu - cpu| / max|cpu| = " << fmt_double(d.rel())
                                       << " > tolerance " << fmt_double(tol) << " (max|cpu| " << fmt_double(d.max_ref)
                                       << "; worst at " << index_str(d.worst, shape) << ": gpu " << got[d.worst]
                                       << " vs cpu " << want[d.worst] << "; " << got.size() << " values)";
}

// Elementwise |got_i - want_i| <= bound_i (an error bound derived per
// element; see where it is used).
inline ::testing::AssertionResult within_bound(const std::string& what, const HostVec& got, const HostVec& want,
                                               const std::vector<double>& bound, const Shape& shape = Shape{}) {
  if (got.size() != want.size() || got.size() != bound.size())
    return ::testing::AssertionFailure() << what << ": sizes " << got.size() << "/" << want.size() << "/"
                                         << bound.size();
  double worst_ratio = 0;
  size_t worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(double(got[i]) - double(want[i]));
    if (!std::isfinite(got[i]))
      return ::testing::AssertionFailure() << what << ": non-finite value at " << index_str(i, shape);
    const double ratio = e / std::max(bound[i], 1e-30);
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  if (worst_ratio <= 1) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": error " << fmt_double(worst_ratio) << "x its bound at "
                                       << index_str(worst, shape) << ": gpu " << got[worst] << " vs cpu " << want[worst]
                                       << ", bound " << fmt_double(bound[worst]);
}

inline double cosine(const HostVec& a, const HostVec& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    ab += double(a[i]) * double(b[i]);
    aa += double(a[i]) * double(a[i]);
    bb += double(b[i]) * double(b[i]);
  }
  if (aa == 0 && bb == 0) return 1.0;  // both exactly zero: the same vector
  return ab / std::sqrt(std::max(aa * bb, 1e-300));
}

inline ::testing::AssertionResult cosine_at_least(const std::string& what, const HostVec& got, const HostVec& want,
                                                  double min_cos) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << what << ": " << got.size() << " values vs " << want.size() << " expected";
  for (float g : got)
    if (!std::isfinite(g)) return ::testing::AssertionFailure() << what << ": non-finite values";
  const double c = cosine(got, want);
  if (c >= min_cos) return ::testing::AssertionSuccess();
  const Diff d = diff(got, want);
  return ::testing::AssertionFailure() << what << ": cosine(gpu, cpu) = " << c << " < " << min_cos
                                       << " (max|gpu - cpu| / max|cpu| = " << fmt_double(d.rel()) << ")";
}

// Cosine with the CPU's at least min_cos and an RMS within norm_tol of the
// CPU's (cosine alone is blind to scale: a lost loss scale or a factor 2
// would pass it). The whole-network mixed-precision check; its bounds are
// derived in test_gpu_resnet.cpp.
inline ::testing::AssertionResult same_direction_and_norm(const std::string& what, const HostVec& got,
                                                          const HostVec& want, double min_cos, double norm_tol) {
  ::testing::AssertionResult c = cosine_at_least(what, got, want, min_cos);
  if (!c) return c;
  const double ng = rms(got), nw = rms(want);  // norms over the same count
  if (nw == 0 ? ng == 0 : std::fabs(ng / nw - 1) <= norm_tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": RMS " << ng << " vs cpu " << nw << " (beyond " << norm_tol << ")";
}

// Directional-derivative check of a gradient computed on the GPU in fp32:
// compares the central difference f(theta + h d) - f(theta - h d) with
// <grad, (theta + h d) - (theta - h d)> (the step actually stored in fp32,
// so representation error of the step does not count), where h d has the
// RMS of theta times h_rel. The direction is random plus half the sign of
// the gradient, so <grad, d> is never accidentally near zero while a wrong
// gradient component still shows. Returns |fd - analytic| / |analytic|.
inline double directional_error(const std::function<double(const HostVec&)>& f, const HostVec& theta,
                                const HostVec& grad, double h_rel, uint64_t seed, double* fd_out = nullptr,
                                double* analytic_out = nullptr) {
  Rng rng(seed);
  HostVec d(theta.size());
  for (size_t i = 0; i < d.size(); ++i)
    d[i] = static_cast<float>(rng.uniform(-1, 1) + (grad[i] > 0 ? 0.5 : grad[i] < 0 ? -0.5 : 0.0));
  const double scale = h_rel * std::max(rms(theta), 1e-3) / std::max(rms(d), 1e-30);
  HostVec plus(theta.size()), minus(theta.size());
  double analytic = 0;
  for (size_t i = 0; i < theta.size(); ++i) {
    plus[i] = static_cast<float>(double(theta[i]) + scale * d[i]);
    minus[i] = static_cast<float>(double(theta[i]) - scale * d[i]);
    analytic += double(grad[i]) * (double(plus[i]) - double(minus[i]));
  }
  const double fd = f(plus) - f(minus);
  if (fd_out) *fd_out = fd;
  if (analytic_out) *analytic_out = analytic;
  return std::fabs(fd - analytic) / std::max(std::fabs(analytic), 1e-300);
}

inline ::testing::AssertionResult directional_ok(const std::string& what,
                                                 const std::function<double(const HostVec&)>& f, const HostVec& theta,
                                                 const HostVec& grad, double h_rel, double tol, uint64_t seed) {
  double fd = 0, analytic = 0;
  const double err = directional_error(f, theta, grad, h_rel, seed, &fd, &analytic);
  if (err <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": central difference " << fd << " vs <grad, step> " << analytic
                                       << ": relative error " << fmt_double(err) << " > " << fmt_double(tol);
}

}  // namespace rn::gpu_test
