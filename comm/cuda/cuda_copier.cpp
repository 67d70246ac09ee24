#include "comm/cuda/cuda_copier.h"

#include "trainer/backend/cuda/cuda_check.h"

namespace rn::comm {

// Every entry point makes device_ current: callers run on any thread.

OwnedMemory CudaStagingCopier::alloc_host(size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device_));
  void* p = nullptr;
  // Portable: pinned for every context, whichever thread allocates.
  CUDA_CHECK(cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocPortable));
  return OwnedMemory(p, MemoryDeleter{[](void* q) { cudaFreeHost(q); }});
}

void CudaStagingCopier::d2h(void* host, const void* device, size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, s_));
}

void CudaStagingCopier::h2d(void* device, const void* host, size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, s_));
}

void CudaStagingCopier::sync() { CUDA_CHECK(cudaStreamSynchronize(s_)); }

}  // namespace rn::comm
