// The optimizer's kernels: one SGD launch over the whole flat parameter range
// (the ParamStore keeps parameters, gradients and velocities contiguous, so
// this is the multi-tensor update), and the non-finite count behind
// Backend::all_finite (the loss-scaling overflow check).
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/backend/cuda/cuda_launch.cuh"

namespace rn::cuda {
namespace {

// The CPU backend's formula (cpu_elementwise.cpp), element by element.
__global__ void sgd_kernel(float* p, const float* g, float* v, int64_t n, float lr, float mu, float wd, bool nesterov,
                           float grad_scale) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float pi = p[i];
    const float gi = grad_scale * g[i] + wd * pi;
    const float vi = mu * v[i] + gi;
    v[i] = vi;
    p[i] = pi - lr * (nesterov ? gi + mu * vi : vi);
  }
}

// Exponent bits all ones: inf or NaN, whatever the compiler assumes about floating point.
__device__ __forceinline__ bool nonfinite(float x) { return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u; }

// Integer atomics: the count is exact whatever the order.
__global__ void count_nonfinite_kernel(const float* x, int64_t n, unsigned int* bad) {
  unsigned int mine = 0;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) mine += nonfinite(x[i]);
  mine = warp_sum(mine);
  if (threadIdx.x % 32 == 0 && mine) atomicAdd(bad, mine);
}

}  // namespace

void sgd_step(float* p, const float* g, float* v, int64_t n, float lr, float momentum, float weight_decay,
              bool nesterov, float grad_scale, cudaStream_t s) {
  if (n <= 0) return;
  sgd_kernel<<<grid_for(n), kThreads, 0, s>>>(p, g, v, n, lr, momentum, weight_decay, nesterov, grad_scale);
  CUDA_CHECK_LAUNCH();
}

void count_nonfinite(const float* x, int64_t n, unsigned int* bad, cudaStream_t s) {
  CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(*bad), s));
  if (n <= 0) return;
  count_nonfinite_kernel<<<grid_for(n), kThreads, 0, s>>>(x, n, bad);
  CUDA_CHECK_LAUNCH();
}

}  // namespace rn::cuda
