#include "comm/cuda/cuda_stream.h"

#include "trainer/backend/cuda/cuda_check.h"

namespace rn::comm {

OwnedStream::OwnedStream(int device) : device_(device) {
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
}

OwnedStream::~OwnedStream() {
  // No throwing from a destructor; a failure here means the context is gone.
  if (s_ != nullptr) cudaStreamDestroy(s_);
}

}  // namespace rn::comm
