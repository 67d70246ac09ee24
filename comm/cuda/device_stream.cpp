#include "comm/cuda/device_stream.h"

#include "trainer/backend/cuda/cuda_check.h"

namespace rn::comm {

void DeviceStream::make_current() const { CUDA_CHECK(cudaSetDevice(stream.device())); }

}  // namespace rn::comm
