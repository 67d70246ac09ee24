// Element access for the CUDA backend's kernels (private to the .cu files).
//
// Activations are fp32, bf16 or fp16; kernels compute in fp32 and round once
// to nearest-even when storing. `dispatch_dtype` turns a runtime rn::DType
// into the element type a kernel template is instantiated with.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "trainer/core/dtype.h"
#include "trainer/core/error.h"

namespace rn::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

template <class T>
__device__ __forceinline__ float load(const T* p, int64_t i) {
  return to_float(p[i]);
}
template <class T>
__device__ __forceinline__ void store(T* p, int64_t i, float v) {
  p[i] = from_float<T>(v);
}

// Carries an element type into a generic lambda: `using T = typename
// decltype(tag)::type;`.
template <class T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<float | __nv_bfloat16 | __half>{}) for t (host side).
template <class F>
void dispatch_dtype(DType t, F&& f) {
  switch (t) {
    case DType::kF32:
      f(TypeTag<float>{});
      return;
    case DType::kBF16:
      f(TypeTag<__nv_bfloat16>{});
      return;
    case DType::kF16:
      f(TypeTag<__half>{});
      return;
  }
  throw_internal("dispatch_dtype", __FILE__, __LINE__, "unknown dtype " + std::to_string(static_cast<int>(t)));
}

}  // namespace rn::cuda
