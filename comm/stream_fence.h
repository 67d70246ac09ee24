// Orders the gradient all-reduce after the device work that computes each
// bucket (host-only interface; comm/cuda/cuda_stream_fence.h implements it with CUDA events).
//
// On a GPU backend, backward reports a bucket ready when the kernels that
// produce it have been issued, not when they have run. GradientSync calls
// mark(i) on the main thread as it hands bucket i over, and wait(i) on the
// communication thread before the all-reduce reads bucket i.
#pragma once

#include <cstddef>

namespace rn::comm {

class StreamFence {
 public:
  virtual ~StreamFence() = default;
  // Main thread: everything issued so far on the compute stream belongs
  // before bucket `bucket`'s all-reduce. Marking again (next step) replaces the previous mark.
  virtual void mark(size_t bucket) = 0;
  // Communication thread: returns once the work marked for `bucket` has
  // completed (the host may then read or hand the memory to MPI).
  virtual void wait(size_t bucket) = 0;
};

}  // namespace rn::comm
