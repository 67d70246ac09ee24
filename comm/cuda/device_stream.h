// What every device all-reducer owns: its communication stream on `device`,
// the reduction kernels and the staging copies queued on that stream.
#pragma once

#include "comm/cuda/cuda_copier.h"
#include "comm/cuda/cuda_reduce_ops.h"
#include "comm/cuda/cuda_stream.h"

namespace rn::comm {

struct DeviceStream {
  explicit DeviceStream(int device) : stream(device), ops(stream.get(), device), copier(stream.get(), device) {}
  // The calling thread's current device (each host thread has its own; the
  // communication thread starts on device 0).
  void make_current() const;

  OwnedStream stream;
  CudaReduceOps ops;
  CudaStagingCopier copier;
};

}  // namespace rn::comm
