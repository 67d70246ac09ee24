// Reduction kernels of the GPU all-reduce: memory-bound grid-stride loops.
// Arithmetic in fp32 with explicit round-to-nearest intrinsics, so nvcc can
// neither fuse nor approximate it (bit-identical to comm/dtype.cpp).
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "comm/cuda/device_reduce.h"

namespace rn::comm {
namespace {

struct F32 {
  using T = float;
  __device__ static float load(float v) { return v; }
  __device__ static float store(float v) { return v; }
};

// The host's float_to_bf16: round to nearest-even, NaN kept quiet.
struct BF16 {
  using T = uint16_t;
  __device__ static float load(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }
  __device__ static uint16_t store(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
  }
};

// IEEE binary16, round to nearest-even (as the host's _Float16 conversion).
struct F16 {
  using T = uint16_t;
  __device__ static float load(uint16_t h) { return __half2float(__ushort_as_half(h)); }
  __device__ static uint16_t store(float f) { return __half_as_ushort(__float2half_rn(f)); }
};

template <class L>
__global__ void add_kernel(typename L::T* __restrict__ dst, const typename L::T* __restrict__ src, size_t n) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = L::store(__fadd_rn(L::load(dst[i]), L::load(src[i])));
}

template <class L>
__global__ void divide_kernel(typename L::T* buf, size_t n, float divisor) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    buf[i] = L::store(__fdiv_rn(L::load(buf[i]), divisor));
}

template <class To, class From>
__global__ void convert_kernel(typename To::T* __restrict__ dst, const typename From::T* __restrict__ src, size_t n) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = To::store(From::load(src[i]));
}

constexpr unsigned kThreads = 256;
// Enough blocks to fill any current GPU; the loop covers the rest.
unsigned blocks_for(size_t n) { return unsigned(std::min<size_t>((n + kThreads - 1) / kThreads, 8192)); }

template <class L>
cudaError_t add_as(void* dst, const void* src, size_t n, cudaStream_t s) {
  using T = typename L::T;
  add_kernel<L><<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(dst), static_cast<const T*>(src), n);
  return cudaGetLastError();
}

template <class L>
cudaError_t divide_as(void* buf, size_t n, float divisor, cudaStream_t s) {
  divide_kernel<L><<<blocks_for(n), kThreads, 0, s>>>(static_cast<typename L::T*>(buf), n, divisor);
  return cudaGetLastError();
}

template <class To, class From>
cudaError_t convert_as(void* dst, const void* src, size_t n, cudaStream_t s) {
  convert_kernel<To, From><<<blocks_for(n), kThreads, 0, s>>>(static_cast<typename To::T*>(dst),
                                                              static_cast<const typename From::T*>(src), n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_reduce_add(DType t, void* dst, const void* src, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  switch (t) {
    case DType::kF32:
      return add_as<F32>(dst, src, n, stream);
    case DType::kBF16:
      return add_as<BF16>(dst, src, n, stream);
    case DType::kF16:
      return add_as<F16>(dst, src, n, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_divide(DType t, void* buf, size_t n, float divisor, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  switch (t) {
    case DType::kF32:
      return divide_as<F32>(buf, n, divisor, stream);
    case DType::kBF16:
      return divide_as<BF16>(buf, n, divisor, stream);
    case DType::kF16:
      return divide_as<F16>(buf, n, divisor, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_convert(DType to, void* dst, DType from, const void* src, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (to == from) return cudaMemcpyAsync(dst, src, n * dtype_size(to), cudaMemcpyDeviceToDevice, stream);
  if (from == DType::kF32 && to == DType::kBF16) return convert_as<BF16, F32>(dst, src, n, stream);
  if (from == DType::kF32 && to == DType::kF16) return convert_as<F16, F32>(dst, src, n, stream);
  if (from == DType::kBF16 && to == DType::kF32) return convert_as<F32, BF16>(dst, src, n, stream);
  if (from == DType::kF16 && to == DType::kF32) return convert_as<F32, F16>(dst, src, n, stream);
  return cudaErrorInvalidValue;  // bf16 <-> fp16: not needed by the all-reduce
}

}  // namespace rn::comm
