// ReduceOps on device memory: kernels (device_reduce.cu) on one stream, the
// all-reducer's communication stream. Calls return once the work is queued;
// finish() waits for the stream. allocate() is cudaMalloc on `device`.
#pragma once

#include <cuda_runtime.h>

#include "comm/reduce_ops.h"

namespace rn::comm {

class CudaReduceOps final : public ReduceOps {
 public:
  // stream: not owned, outlives this object.
  CudaReduceOps(cudaStream_t stream, int device) : s_(stream), device_(device) {}

  void reduce_add(DType t, void* dst, const void* src, size_t n) override;
  void divide(DType t, void* buf, size_t n, float divisor) override;
  void convert(DType to, void* dst, DType from, const void* src, size_t n) override;
  void finish() override;
  OwnedMemory allocate(size_t bytes) override;

 private:
  cudaStream_t s_;
  int device_;
};

}  // namespace rn::comm
