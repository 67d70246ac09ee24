// Memory-bound kernels of the CUDA backend (fill, axpby, add, SGD), each
// launched on an explicit stream. Same formulas as the CPU backend
// (trainer/backend/cpu/cpu_elementwise.cpp). Unverified on a GPU so far.
#include "trainer/backend/cuda/cuda_elementwise.h"

#include "trainer/backend/cuda/cuda_check.h"

namespace rn::cuda {
namespace {

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

__global__ void fill_kernel(float* p, int64_t n, float v) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) p[i] = v;
}

__global__ void axpby_kernel(float a, float* y, float b, const float* x, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = a * y[i] + b * x[i];
}

__global__ void sgd_kernel(float* p, const float* g, float* v, int64_t n, float lr, float mu, float wd, bool nesterov) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float gi = g[i] + wd * p[i];
  const float vi = mu * v[i] + gi;
  v[i] = vi;
  p[i] -= lr * (nesterov ? gi + mu * vi : vi);
}

}  // namespace

void fill(float* p, int64_t n, float value, cudaStream_t s) {
  if (n == 0) return;
  fill_kernel<<<blocks_for(n), kThreads, 0, s>>>(p, n, value);
  CUDA_CHECK_LAUNCH();
}

void axpby(float a, float* y, float b, const float* x, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  axpby_kernel<<<blocks_for(n), kThreads, 0, s>>>(a, y, b, x, n);
  CUDA_CHECK_LAUNCH();
}

void sgd_step(float* p, const float* g, float* v, int64_t n, float lr, float momentum, float wd, bool nesterov,
              cudaStream_t s) {
  if (n == 0) return;
  sgd_kernel<<<blocks_for(n), kThreads, 0, s>>>(p, g, v, n, lr, momentum, wd, nesterov);
  CUDA_CHECK_LAUNCH();
}

}  // namespace rn::cuda
