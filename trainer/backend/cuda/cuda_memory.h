// Device memory of the CUDA backend: counted allocations, grow-only scratch
// buffers (the one convolution workspace arena among them) and pinned host staging.
//
// When memory is allocated: layers build a plan (kernel objects, output
// tensors) the first time they see an input shape, i.e. in the first
// training step and the first evaluation batch, and the network's gradient
// pool (trainer/nn/tensor_pool.h) grows during the first backward pass; the
// grow-only buffers reach their final size then too. The steady-state step calls none of the
// allocation functions here, so it neither allocates nor frees.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "trainer/core/tensor.h"

namespace rn::cuda {

// Bytes of device memory one backend holds now and at most (the peak it
// reports), over every allocation made through device_alloc.
struct MemoryAccount {
  int device = 0;
  std::atomic<size_t> held{0};
  std::atomic<size_t> peak{0};
  // cudaMalloc and cudaMallocHost calls made (the steady-state step adds none).
  std::atomic<size_t> allocations{0};
  // Appended to the out-of-memory message: what the user can lower.
  std::string oom_hint;
};

// cudaMalloc of `bytes` (at least 256) on the current device, counted in
// `account`. The Buffer's release function frees it and un-counts it, also
// after the backend is gone. Throws UserError when the device is out of
// memory, naming `what`, the bytes asked, the bytes already held and the fix.
std::shared_ptr<Buffer> device_alloc(const std::shared_ptr<MemoryAccount>& account, size_t bytes,
                                     const std::string& what);

// A device buffer that only grows (scratch whose contents do not outlive one
// backend call). Growth waits for the streams that use it, frees the old
// storage, then allocates the new size: done when a kernel object is created
// or a size is first seen, never in the steady state.
class GrowBuffer {
 public:
  GrowBuffer(std::shared_ptr<MemoryAccount> account, std::vector<cudaStream_t> users, const char* what);
  // Makes the buffer at least `bytes` long (rounded up to 1 MiB).
  void reserve(size_t bytes);
  void* data() const { return buf_ ? buf_->data() : nullptr; }
  size_t bytes() const { return buf_ ? buf_->bytes() : 0; }

 private:
  std::shared_ptr<MemoryAccount> account_;
  std::vector<cudaStream_t> users_;
  const char* what_;
  std::shared_ptr<Buffer> buf_;
};

// Page-locked host memory that only grows (cudaMallocHost): small staging
// for labels and results read back every step. Not counted as device memory.
class PinnedBuffer {
 public:
  // account: counts the allocations (not the bytes).
  explicit PinnedBuffer(std::shared_ptr<MemoryAccount> account) : account_(std::move(account)) {}
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  // Makes the buffer at least `bytes` long; the caller guarantees no copy
  // in flight uses it (every user here synchronizes before returning).
  void reserve(size_t bytes);
  void* data() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  std::shared_ptr<MemoryAccount> account_;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace rn::cuda
