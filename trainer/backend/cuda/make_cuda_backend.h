// The CUDA backend's factory, declared without CUDA headers so that host
// code (trainer/backend/make_backend.cpp) can call it.
#pragma once

#include <memory>

#include "trainer/backend/backend.h"

namespace rn {

// Checks the device (o.cuda_device among the visible ones), the driver and
// cuDNN (>= 9) and throws UserError saying what to fix when one is missing;
// then makes the current device o.cuda_device and builds the backend on it.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& o);

// How many CUDA devices this process sees (CUDA_VISIBLE_DEVICES applies);
// 0 when there is no driver or no device. Creates no CUDA context.
int visible_cuda_devices(std::string* why_none = nullptr);

// cudaSetDevice(ordinal), which creates the device's primary context;
// false (and nothing else happens) when CUDA refuses.
bool make_cuda_device_current(int ordinal);

}  // namespace rn
