// Error macros for CUDA, cuDNN and cuBLAS calls: a failure names the call,
// file:line, MPI rank and device (see trainer/core/error.h).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "trainer/core/error.h"

#define CUDA_CHECK(call)                                                                 \
  do {                                                                                   \
    cudaError_t rn_cuda_err_ = (call);                                                   \
    if (rn_cuda_err_ != cudaSuccess)                                                     \
      ::rn::throw_internal(#call, __FILE__, __LINE__, cudaGetErrorString(rn_cuda_err_)); \
  } while (0)

// After a kernel launch: catches bad launch configurations at the launch.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUDNN_CHECK(call)                                                                 \
  do {                                                                                    \
    cudnnStatus_t rn_cudnn_st_ = (call);                                                  \
    if (rn_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                             \
      ::rn::throw_internal(#call, __FILE__, __LINE__, cudnnGetErrorString(rn_cudnn_st_)); \
  } while (0)

#define CUBLAS_CHECK(call)                                                                      \
  do {                                                                                          \
    cublasStatus_t rn_cublas_st_ = (call);                                                      \
    if (rn_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                 \
      ::rn::throw_internal(#call, __FILE__, __LINE__,                                           \
                           "cuBLAS status " + std::to_string(static_cast<int>(rn_cublas_st_))); \
  } while (0)
