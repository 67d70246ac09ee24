// The fully connected layer's bias kernels (cuda_linear_bias.cu), used by
// cuda_linear.cpp. Matrices are fp32, row-major, in device memory; calls are
// asynchronous on stream s.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace rn::cuda {

// y[i, o] += b[o] for y [n, out].
void add_bias_rows(float* y, const float* b, int64_t n, int64_t out, cudaStream_t s);
// db[o] = sum over i of dy[i, o] for dy [n, out] (db overwritten; the same
// bits on every run: a fixed summation order, no atomics).
void column_sums(const float* dy, int64_t n, int64_t out, float* db, cudaStream_t s);

}  // namespace rn::cuda
