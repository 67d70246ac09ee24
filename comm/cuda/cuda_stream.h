// The communication stream an all-reducer owns: non-blocking (it never waits
// for the legacy default stream), created on `device`, destroyed with it.
#pragma once

#include <cuda_runtime.h>

namespace rn::comm {

class OwnedStream {
 public:
  explicit OwnedStream(int device);
  ~OwnedStream();
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  cudaStream_t get() const { return s_; }
  int device() const { return device_; }

 private:
  int device_;
  cudaStream_t s_ = nullptr;
};

}  // namespace rn::comm
