// Batch norm with given statistics (inference and frozen BN in training;
// cuDNN's batch-statistics paths live in the backend's batch-norm kernel)
// and the conversion of cuDNN's saved inverse std-dev to a variance.
// Formulas as oneDNN's use_global_stats: y = gamma * inv_std * (x - mean) + beta.
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_dtype.cuh"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/backend/cuda/cuda_launch.cuh"

namespace rn::cuda {
namespace {

__device__ __forceinline__ float inv_std_of(const float* var, int64_t c, float eps) {
  return 1.f / sqrtf(var[c] + eps);  // IEEE sqrt and division (no --use_fast_math)
}

template <class T, bool kNhwc>
__global__ void bn_forward_kernel(const T* x, const T* z, T* y, int64_t total, int64_t c, int64_t hw,
                                  const float* gamma, const float* beta, const float* mean, const float* var, float eps,
                                  bool relu) {
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t ch = kNhwc ? i % c : i / hw % c;
    const float scale = gamma[ch] * inv_std_of(var, ch, eps);
    float v = scale * (load(x, i) - mean[ch]) + beta[ch];
    if (z) v += load(z, i);
    if (relu) v = (v > 0.f || v != v) ? v : 0.f;  // NaN passes, as in relu_forward
    store(y, i, v);
  }
}

// One block per channel, threads striding over its n * h * w elements; each
// thread sums its share in a fixed order, then a tree in shared memory: the
// sums are reproducible without scratch memory or float atomics. In NHWC the
// channel's elements are c apart, so most of each 32-byte sector read is
// wasted (L2 absorbs part of it, as neighbouring channels' blocks read the
// same sectors): acceptable because only frozen BN runs this backward; the
// batch-statistics backward is cuDNN's.
template <class T, bool kNhwc>
__global__ void bn_backward_kernel(const T* x, const T* y, const T* dy, int64_t n, int64_t c, int64_t hw,
                                   const float* gamma, const float* mean, const float* var, float eps, bool relu, T* dx,
                                   T* dz, float* dgamma, float* dbeta) {
  __shared__ float smem[kThreads];
  const int64_t ch = blockIdx.x;
  const float inv_std = inv_std_of(var, ch, eps);
  const float scale = gamma[ch] * inv_std, mu = mean[ch];
  const int64_t count = n * hw;
  float sum_g = 0.f, sum_gx = 0.f;  // sum g, sum g * (x - mean)
  for (int64_t m = threadIdx.x; m < count; m += blockDim.x) {
    const int64_t i = kNhwc ? m * c + ch : (m / hw * c + ch) * hw + m % hw;
    float g = load(dy, i);
    if (relu && !(load(y, i) > 0.f)) g = 0.f;
    sum_g += g;
    sum_gx += g * (load(x, i) - mu);
    store(dx, i, g * scale);
    if (dz) store(dz, i, g);
  }
  sum_g = block_sum(sum_g, smem);
  sum_gx = block_sum(sum_gx, smem);
  if (threadIdx.x == 0) {
    dbeta[ch] = sum_g;
    dgamma[ch] = sum_gx * inv_std;  // sum g * xhat, with inv_std factored out
  }
}

void check_layout(Layout l) {
  RN_CHECK(l == Layout::kNCHW || l == Layout::kNHWC, std::string("batch norm: layout ") + layout_name(l));
}

}  // namespace

void bn_stats_forward(const void* x, const void* z, void* y, Dims4 d, Layout l, DType t, const float* gamma,
                      const float* beta, const float* mean, const float* var, float eps, bool relu, cudaStream_t s) {
  check_layout(l);
  const int64_t total = d.numel(), hw = d.h * d.w;
  if (total <= 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto* xp = static_cast<const T*>(x);
    const auto* zp = static_cast<const T*>(z);
    auto* yp = static_cast<T*>(y);
    if (l == Layout::kNHWC)
      bn_forward_kernel<T, true>
          <<<grid_for(total), kThreads, 0, s>>>(xp, zp, yp, total, d.c, hw, gamma, beta, mean, var, eps, relu);
    else
      bn_forward_kernel<T, false>
          <<<grid_for(total), kThreads, 0, s>>>(xp, zp, yp, total, d.c, hw, gamma, beta, mean, var, eps, relu);
    CUDA_CHECK_LAUNCH();
  });
}

void bn_stats_backward(const void* x, const void* y, const void* dy, Dims4 d, Layout l, DType t, const float* gamma,
                       const float* mean, const float* var, float eps, bool relu, void* dx, void* dz, float* dgamma,
                       float* dbeta, cudaStream_t s) {
  check_layout(l);
  RN_CHECK(!relu || y != nullptr, "bn_stats_backward: the fused ReLU needs the forward output y");
  if (d.c <= 0) return;
  RN_CHECK(d.c <= 0x7fffffff, "bn_stats_backward: too many channels");
  const int64_t hw = d.h * d.w;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto* xp = static_cast<const T*>(x);
    const auto* yp = static_cast<const T*>(y);
    const auto* dyp = static_cast<const T*>(dy);
    auto* dxp = static_cast<T*>(dx);
    auto* dzp = static_cast<T*>(dz);
    const unsigned grid = static_cast<unsigned>(d.c);
    if (l == Layout::kNHWC)
      bn_backward_kernel<T, true>
          <<<grid, kThreads, 0, s>>>(xp, yp, dyp, d.n, d.c, hw, gamma, mean, var, eps, relu, dxp, dzp, dgamma, dbeta);
    else
      bn_backward_kernel<T, false>
          <<<grid, kThreads, 0, s>>>(xp, yp, dyp, d.n, d.c, hw, gamma, mean, var, eps, relu, dxp, dzp, dgamma, dbeta);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace rn::cuda
