// The CUDA backend's fully connected layer: cuBLAS GEMMs in strict fp32 (no
// TF32, so the fp32 reference mode matches the CPU backend) plus small bias
// kernels. x [n, in], w [out, in], b [out], y [n, out], all fp32 row-major
// (Layout::kNC) in device memory.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "trainer/backend/backend.h"

namespace rn::cuda {

// h and s are borrowed (the backend owns them and outlives the kernel); the
// handle may be shared, so every call binds it to s again. Allocates nothing.
std::unique_ptr<LinearKernel> make_cuda_linear(cublasHandle_t h, cudaStream_t s, int64_t n, int64_t in, int64_t out);

}  // namespace rn::cuda
