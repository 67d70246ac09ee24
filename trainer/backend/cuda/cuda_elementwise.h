// Elementwise kernels of the CUDA backend. Pointers are device memory of n
// floats; every call is asynchronous on stream s.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace rn::cuda {

void fill(float* p, int64_t n, float value, cudaStream_t s);
// y = a * y + b * x
void axpby(float a, float* y, float b, const float* x, int64_t n, cudaStream_t s);
// PyTorch SGD: g += wd * p; v = mu * v + g; p -= lr * (nesterov ? g + mu * v : v)
void sgd_step(float* p, const float* g, float* v, int64_t n, float lr, float momentum, float wd, bool nesterov,
              cudaStream_t s);

}  // namespace rn::cuda
