// The arithmetic and the memory of the place where an all-reduce's data live.
//
// The ring executor (ring_allreduce.cpp) and GradientSync's wire packing
// never touch elements themselves; they ask a ReduceOps. The host one calls
// comm/dtype.h at once. The CUDA one (comm/cuda/cuda_reduce_ops.h) launches
// kernels on the all-reducer's communication stream: its calls return before
// the work is done and are ordered with each other and with the staging
// copies on that stream (staged_transport.h); finish() waits for them. Both
// add in fp32 and round once per operation, so their results are bit-identical.
#pragma once

#include <cstddef>
#include <memory>

#include "comm/dtype.h"

namespace rn::comm {

// Memory handed out by ReduceOps::allocate or StagingCopier::alloc_host; the
// deleter is the allocator's own free function.
struct MemoryDeleter {
  void (*release)(void*) = nullptr;
  void operator()(void* p) const {
    if (p != nullptr && release != nullptr) release(p);
  }
};
using OwnedMemory = std::unique_ptr<void, MemoryDeleter>;

class ReduceOps {
 public:
  virtual ~ReduceOps() = default;
  // dst[i] = round(float(dst[i]) + float(src[i])) for n elements of type t.
  virtual void reduce_add(DType t, void* dst, const void* src, size_t n) = 0;
  // buf[i] = round(float(buf[i]) / divisor): the average after a sum.
  virtual void divide(DType t, void* buf, size_t n, float divisor) = 0;
  // n elements of type `from` at src, converted to type `to` at dst: fp32 to
  // a wire type (pack), a wire type to fp32 (unpack), or a copy (same type).
  virtual void convert(DType to, void* dst, DType from, const void* src, size_t n) = 0;
  // Returns once every operation issued so far has completed (host: at once).
  virtual void finish() = 0;
  // `bytes` of uninitialised memory of this place (host or device).
  virtual OwnedMemory allocate(size_t bytes) = 0;
};

// Host memory, comm/dtype.h arithmetic. Stateless; shared by every caller.
ReduceOps& host_reduce_ops();

}  // namespace rn::comm
