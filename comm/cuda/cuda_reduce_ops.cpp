#include "comm/cuda/cuda_reduce_ops.h"

#include "comm/cuda/device_reduce.h"
#include "trainer/backend/cuda/cuda_check.h"

namespace rn::comm {

// Every entry point makes device_ current: callers run on any thread
// (GradientSync's communication thread packs before run() is entered).

void CudaReduceOps::reduce_add(DType t, void* dst, const void* src, size_t n) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(launch_reduce_add(t, dst, src, n, s_));
}

void CudaReduceOps::divide(DType t, void* buf, size_t n, float divisor) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(launch_divide(t, buf, n, divisor, s_));
}

void CudaReduceOps::convert(DType to, void* dst, DType from, const void* src, size_t n) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(launch_convert(to, dst, from, src, n, s_));
}

void CudaReduceOps::finish() { CUDA_CHECK(cudaStreamSynchronize(s_)); }

OwnedMemory CudaReduceOps::allocate(size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device_));
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 1 : bytes));
  return OwnedMemory(p, MemoryDeleter{[](void* q) { cudaFree(q); }});
}

}  // namespace rn::comm
