// Global average pool: y[n, c] = mean over h, w. Each mean is summed by one
// warp (NCHW: the plane is contiguous) or one thread (NHWC: neighbouring
// threads read neighbouring channels) in a fixed order, so it is
// reproducible bit for bit.
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_dtype.cuh"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/backend/cuda/cuda_launch.cuh"

namespace rn::cuda {
namespace {

constexpr int kWarp = 32;

// One warp per (n, c) plane of hw contiguous elements.
template <class T>
__global__ void pool_nchw_kernel(const T* x, int64_t planes, int64_t hw, float* y) {
  const int64_t warps = grid_threads() / kWarp;
  const int lane = threadIdx.x % kWarp;
  for (int64_t p = global_thread() / kWarp; p < planes; p += warps) {
    const T* xp = x + p * hw;
    float sum = 0.f;
    for (int64_t i = lane; i < hw; i += kWarp) sum += load(xp, i);
    sum = warp_sum(sum);
    if (lane == 0) y[p] = sum / static_cast<float>(hw);
  }
}

// One thread per (n, c): x is [n, hw, c].
template <class T>
__global__ void pool_nhwc_kernel(const T* x, int64_t n, int64_t c, int64_t hw, float* y) {
  for (int64_t i = global_thread(); i < n * c; i += grid_threads()) {
    const int64_t b = i / c, ch = i % c;
    const T* xp = x + b * hw * c + ch;
    float sum = 0.f;
    for (int64_t j = 0; j < hw; ++j) sum += load(xp, j * c);
    y[i] = sum / static_cast<float>(hw);
  }
}

template <class T, bool kNhwc>
__global__ void pool_backward_kernel(const float* dy, int64_t total, int64_t c, int64_t hw, T* dx) {
  const float size = static_cast<float>(hw);
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    // NCHW: dy index = i / hw; NHWC: (n, c) = (i / (hw * c), i % c).
    const int64_t nc = kNhwc ? i / (hw * c) * c + i % c : i / hw;
    store(dx, i, dy[nc] / size);  // one rounding, as the forward's division
  }
}

void check_layout(Layout l) {
  RN_CHECK(l == Layout::kNCHW || l == Layout::kNHWC, std::string("global pool: layout ") + layout_name(l));
}

}  // namespace

void global_avg_pool_forward(const void* x, Dims4 d, Layout l, DType t, float* y, cudaStream_t s) {
  check_layout(l);
  const int64_t hw = d.h * d.w, planes = d.n * d.c;
  if (planes <= 0) return;
  RN_CHECK(hw > 0, "global pool over an empty plane");
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto* xp = static_cast<const T*>(x);
    if (l == Layout::kNHWC)
      pool_nhwc_kernel<T><<<grid_for(planes), kThreads, 0, s>>>(xp, d.n, d.c, hw, y);
    else
      pool_nchw_kernel<T><<<grid_for(planes * kWarp), kThreads, 0, s>>>(xp, planes, hw, y);
    CUDA_CHECK_LAUNCH();
  });
}

void global_avg_pool_backward(const float* dy, Dims4 d, Layout l, DType t, void* dx, cudaStream_t s) {
  check_layout(l);
  const int64_t total = d.numel(), hw = d.h * d.w;
  if (total <= 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto* dxp = static_cast<T*>(dx);
    if (l == Layout::kNHWC)
      pool_backward_kernel<T, true><<<grid_for(total), kThreads, 0, s>>>(dy, total, d.c, hw, dxp);
    else
      pool_backward_kernel<T, false><<<grid_for(total), kThreads, 0, s>>>(dy, total, d.c, hw, dxp);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace rn::cuda
