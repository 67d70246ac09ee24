// Element-wise kernels of the GPU all-reduce (device_reduce.cu), launched on
// a caller's stream. Shared by nvcc (C++17) and g++: keep it plain.
//
// Every operation converts to fp32, computes in fp32 with IEEE round-to-
// nearest (__fadd_rn, __fdiv_rn: never contracted or approximated) and
// rounds once to the element type with the host's rules (comm/dtype.h), so
// results are bit-identical to the host ReduceOps for finite values.
// Each returns the launch status (cudaGetLastError); n == 0 launches nothing.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "trainer/core/dtype.h"

namespace rn::comm {

// dst[i] = round(float(dst[i]) + float(src[i])), n elements of type t.
cudaError_t launch_reduce_add(DType t, void* dst, const void* src, size_t n, cudaStream_t stream);
// buf[i] = round(float(buf[i]) / divisor).
cudaError_t launch_divide(DType t, void* buf, size_t n, float divisor, cudaStream_t stream);
// dst[i] = round_to(to, float(src[i])); from == to copies.
cudaError_t launch_convert(DType to, void* dst, DType from, const void* src, size_t n, cudaStream_t stream);

}  // namespace rn::comm
