// Opening "this rank's" GPU: the checks that turn a missing driver, a hidden
// device or an old cuDNN into a message that says what to fix.
#pragma once

#include <cstddef>
#include <string>

namespace rn::cuda {

// Oldest cuDNN the backend runs on: 9.0 (the v9 API of cudnnGetVersion,
// NHWC bf16 batch norm with BN_ADD_ACTIVATION, the legacy convolution API).
inline constexpr size_t kMinCudnnVersion = 90000;

struct DeviceFacts {
  int ordinal = 0;   // among the visible devices
  int visible = 0;   // how many this process sees
  std::string name;  // "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  size_t total_bytes = 0;                       // device memory
  int driver_version = 0, runtime_version = 0;  // 12040 = 12.4
  size_t cudnn_version = 0;                     // 91900 = 9.19.0
  int cudnn_cudart_version = 0;                 // the CUDA cuDNN was built for (13000 = 13.0)
  std::string str() const;                      // one line for the run log
};

// cuDNN's version as loaded at run time. RN_TEST_CUDNN_VERSION=N pretends
// the loaded cuDNN is N (tests of the "too old" message on any machine).
size_t loaded_cudnn_version();

// Checks cuDNN (>= kMinCudnnVersion, built for this runtime's CUDA major),
// the driver (new enough for the runtime), then that `ordinal` names a visible
// device, then makes it current (the first call that creates a CUDA
// context). Throws UserError naming the cause and the fix.
DeviceFacts open_device(int ordinal);

}  // namespace rn::cuda
