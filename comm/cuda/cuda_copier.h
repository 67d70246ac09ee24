// StagingCopier for CUDA: cudaMemcpyAsync on the communication stream (the
// stream of the CudaReduceOps it is used with), pinned slots from
// cudaHostAlloc, sync() = cudaStreamSynchronize.
#pragma once

#include <cuda_runtime.h>

#include "comm/staged_transport.h"

namespace rn::comm {

class CudaStagingCopier final : public StagingCopier {
 public:
  // stream: not owned, outlives this object.
  CudaStagingCopier(cudaStream_t stream, int device) : s_(stream), device_(device) {}

  OwnedMemory alloc_host(size_t bytes) override;
  void d2h(void* host, const void* device, size_t bytes) override;
  void h2d(void* device, const void* host, size_t bytes) override;
  void sync() override;

 private:
  cudaStream_t s_;
  int device_;
};

}  // namespace rn::comm
