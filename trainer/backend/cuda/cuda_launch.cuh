// Launch geometry and block reductions for the CUDA backend's kernels
// (private to the .cu files).
//
// Elementwise kernels use grid-stride loops with 64-bit indices, so a grid
// capped at kMaxBlocks covers any element count. Reductions are fixed-order
// trees (shared memory or warp shuffles, never float atomics), so a sum gives
// the same bits run after run for a given launch configuration.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace rn::cuda {

constexpr int kThreads = 256;
// Enough blocks to fill any current GPU several times over (an H100 holds
// 132 SMs x 8 blocks of 256 threads); the grid-stride loop does the rest.
constexpr int64_t kMaxBlocks = 8192;

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, kMaxBlocks));
}

__device__ __forceinline__ int64_t global_thread() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

// Sum over the 32 lanes of a warp in a fixed butterfly order; every lane gets the result.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over a block whose size is a power of two (at most 1024): a tree in
// shared memory `smem` (blockDim.x elements). Every thread must call it and
// gets the result; smem may be reused after the call.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* smem) {
  const unsigned t = threadIdx.x;
  smem[t] = v;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half >>= 1) {
    if (t < half) smem[t] += smem[t + half];
    __syncthreads();
  }
  const T r = smem[0];
  __syncthreads();  // smem may be written again right after
  return r;
}

}  // namespace rn::cuda
