// Shortcut option A on NCHW or NHWC: the strided identity into the first
// channels, zeros elsewhere. One pass over the written tensor (no separate
// fill), as the CPU backend's cpu_shortcut_pad.cpp computes it.
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_dtype.cuh"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/backend/cuda/cuda_launch.cuh"

namespace rn::cuda {
namespace {

struct Index4 {
  int64_t n, c, h, w;
};

// Dims4::numel() is host code: kernels get element counts as arguments.

// Logical coordinates of flat element i of a tensor of dims d.
template <bool kNhwc>
__device__ __forceinline__ Index4 coords(int64_t i, const Dims4& d) {
  Index4 r;
  if (kNhwc) {
    r.c = i % d.c;
    i /= d.c;
    r.w = i % d.w;
    i /= d.w;
    r.h = i % d.h;
    r.n = i / d.h;
  } else {
    r.w = i % d.w;
    i /= d.w;
    r.h = i % d.h;
    i /= d.h;
    r.c = i % d.c;
    r.n = i / d.c;
  }
  return r;
}

template <bool kNhwc>
__device__ __forceinline__ int64_t offset(const Index4& x, const Dims4& d) {
  return kNhwc ? ((x.n * d.h + x.h) * d.w + x.w) * d.c + x.c : ((x.n * d.c + x.c) * d.h + x.h) * d.w + x.w;
}

// Every y element: the strided x element for the first xd.c channels, else 0.
template <class T, bool kNhwc>
__global__ void pad_forward_kernel(const T* x, Dims4 xd, T* y, Dims4 yd, int64_t n, int64_t stride) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    Index4 p = coords<kNhwc>(i, yd);
    if (p.c < xd.c) {
      p.h *= stride;
      p.w *= stride;
      y[i] = x[offset<kNhwc>(p, xd)];
    } else {
      y[i] = from_float<T>(0.f);
    }
  }
}

// Every dx element: the dy element it was copied to, or 0 where it was skipped.
template <class T, bool kNhwc>
__global__ void pad_backward_kernel(const T* dy, Dims4 yd, T* dx, Dims4 xd, int64_t n, int64_t stride) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    Index4 p = coords<kNhwc>(i, xd);
    if (p.h % stride == 0 && p.w % stride == 0) {
      p.h /= stride;
      p.w /= stride;
      dx[i] = dy[offset<kNhwc>(p, yd)];
    } else {
      dx[i] = from_float<T>(0.f);
    }
  }
}

void check(Dims4 xd, Dims4 yd, Layout l, int64_t stride) {
  RN_CHECK(l == Layout::kNCHW || l == Layout::kNHWC, std::string("shortcut pad: layout ") + layout_name(l));
  RN_CHECK(stride >= 1 && xd.n == yd.n && yd.c >= xd.c && yd.h == (xd.h + stride - 1) / stride &&
               yd.w == (xd.w + stride - 1) / stride,
           "shortcut pad: x [" + std::to_string(xd.n) + ", " + std::to_string(xd.c) + ", " + std::to_string(xd.h) +
               ", " + std::to_string(xd.w) + "] -> y [" + std::to_string(yd.n) + ", " + std::to_string(yd.c) + ", " +
               std::to_string(yd.h) + ", " + std::to_string(yd.w) + "], stride " + std::to_string(stride));
}

}  // namespace

void shortcut_pad_forward(const void* x, Dims4 xd, void* y, Dims4 yd, Layout l, DType t, int64_t stride,
                          cudaStream_t s) {
  check(xd, yd, l, stride);
  const int64_t n = yd.numel();
  if (n <= 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto* xp = static_cast<const T*>(x);
    auto* yp = static_cast<T*>(y);
    if (l == Layout::kNHWC)
      pad_forward_kernel<T, true><<<grid_for(n), kThreads, 0, s>>>(xp, xd, yp, yd, n, stride);
    else
      pad_forward_kernel<T, false><<<grid_for(n), kThreads, 0, s>>>(xp, xd, yp, yd, n, stride);
    CUDA_CHECK_LAUNCH();
  });
}

void shortcut_pad_backward(const void* dy, Dims4 yd, void* dx, Dims4 xd, Layout l, DType t, int64_t stride,
                           cudaStream_t s) {
  check(xd, yd, l, stride);
  const int64_t n = xd.numel();
  if (n <= 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto* dyp = static_cast<const T*>(dy);
    auto* dxp = static_cast<T*>(dx);
    if (l == Layout::kNHWC)
      pad_backward_kernel<T, true><<<grid_for(n), kThreads, 0, s>>>(dyp, yd, dxp, xd, n, stride);
    else
      pad_backward_kernel<T, false><<<grid_for(n), kThreads, 0, s>>>(dyp, yd, dxp, xd, n, stride);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace rn::cuda
