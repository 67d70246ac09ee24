// Memory-bound elementwise kernels: fill, axpby, add, ReLU. Same formulas
// as the CPU backend (cpu_elementwise.cpp, oneDNN's ReLU); every element is
// independent, so results do not depend on the launch configuration.
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_dtype.cuh"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/backend/cuda/cuda_launch.cuh"

namespace rn::cuda {
namespace {

template <class T>
__global__ void fill_kernel(T* p, int64_t n, float value) {
  const T v = from_float<T>(value);
  for (int64_t i = global_thread(); i < n; i += grid_threads()) p[i] = v;
}

__global__ void axpby_kernel(float a, float* y, float b, const float* x, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) y[i] = a * y[i] + b * x[i];
}

// No __restrict__: out may alias a or b (each element is read before it is written).
template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) store(out, i, load(a, i) + load(b, i));
}

template <class T>
__global__ void relu_forward_kernel(const T* x, T* y, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float v = load(x, i);
    // NaN passes through (v != v), as in oneDNN, so a diverged step stays visible.
    store(y, i, (v > 0.f || v != v) ? v : 0.f);
  }
}

template <class T>
__global__ void relu_backward_kernel(const T* y, const T* dy, T* dx, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) store(dx, i, load(y, i) > 0.f ? load(dy, i) : 0.f);
}

}  // namespace

void fill(void* p, DType t, int64_t n, float value, cudaStream_t s) {
  if (n <= 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(p), n, value);
    CUDA_CHECK_LAUNCH();
  });
}

void axpby(float a, float* y, float b, const float* x, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  axpby_kernel<<<grid_for(n), kThreads, 0, s>>>(a, y, b, x, n);
  CUDA_CHECK_LAUNCH();
}

void add(const void* a, const void* b, void* out, DType t, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    add_kernel<T>
        <<<grid_for(n), kThreads, 0, s>>>(static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), n);
    CUDA_CHECK_LAUNCH();
  });
}

void relu_forward(const void* x, void* y, DType t, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    relu_forward_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), n);
    CUDA_CHECK_LAUNCH();
  });
}

void relu_backward(const void* y, const void* dy, void* dx, DType t, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  dispatch_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    relu_backward_kernel<T>
        <<<grid_for(n), kThreads, 0, s>>>(static_cast<const T*>(y), static_cast<const T*>(dy), static_cast<T*>(dx), n);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace rn::cuda
