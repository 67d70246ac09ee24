// Memory-bound helpers as OpenMP loops: fill, axpby, add, SGD. Every
// element is computed independently, so results do not depend on threads.
#include <cmath>

#include "trainer/backend/cpu/cpu_backend.h"
#include "trainer/core/parallel_for.h"

namespace rn {

static void check_same(const Tensor& a, const Tensor& b, const char* what) {
  RN_CHECK(a.numel() == b.numel() && a.layout() == b.layout(),
           std::string(what) + ": " + a.shape().str() + "/" + layout_name(a.layout()) + " vs " + b.shape().str() + "/" +
               layout_name(b.layout()));
}

void CpuBackend::fill(Tensor& t, float value) {
  float* p = t.data();
  const int64_t n = t.numel();
  parallel_for(n, [=](int64_t i) { p[i] = value; });
}

void CpuBackend::axpby(float a, Tensor& y, float b, const Tensor& x) {
  check_same(y, x, "axpby");
  float* yp = y.data();
  const float* xp = x.data();
  const int64_t n = y.numel();
  parallel_for(n, [=](int64_t i) { yp[i] = a * yp[i] + b * xp[i]; });
}

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  check_same(a, b, "add");
  check_same(a, out, "add");
  const float* ap = a.data();
  const float* bp = b.data();
  float* op = out.data();
  const int64_t n = a.numel();
  parallel_for(n, [=](int64_t i) { op[i] = ap[i] + bp[i]; });
}

void CpuBackend::sgd_step(Tensor& param, const Tensor& grad, Tensor& velocity, float lr, float momentum,
                          float weight_decay, bool nesterov, float grad_scale) {
  RN_CHECK(param.numel() == grad.numel() && param.numel() == velocity.numel(), "sgd_step sizes differ");
  float* p = param.data();
  const float* g = grad.data();
  float* v = velocity.data();
  const int64_t n = param.numel();
  parallel_for(n, [=](int64_t i) {
    const float gi = grad_scale * g[i] + weight_decay * p[i];
    v[i] = momentum * v[i] + gi;
    p[i] -= lr * (nesterov ? gi + momentum * v[i] : v[i]);
  });
}

bool CpuBackend::all_finite(const Tensor& t) {
  const float* p = t.data();
  const int64_t n = t.numel();
  return parallel_count(n, [=](int64_t i) { return !std::isfinite(p[i]); }) == 0;
}

}  // namespace rn
