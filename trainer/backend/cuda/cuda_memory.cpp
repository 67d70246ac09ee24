#include "trainer/backend/cuda/cuda_memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "trainer/backend/cuda/cuda_check.h"

namespace rn::cuda {
namespace {

// Buffer's release function gets only the pointer: the account and size of
// each live allocation are found here.
struct Allocation {
  std::shared_ptr<MemoryAccount> account;
  size_t bytes = 0;
};
struct Registry {
  std::mutex m;
  std::unordered_map<void*, Allocation> live;
};
// Never destroyed: a tensor may be released during static destruction.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

double mib(size_t b) { return double(b) / double(1 << 20); }

void release(void* p) {
  Allocation a;
  {
    std::lock_guard<std::mutex> lock(registry().m);
    auto it = registry().live.find(p);
    if (it == registry().live.end()) return;
    a = std::move(it->second);
    registry().live.erase(it);
  }
  a.account->held -= a.bytes;
  // The releasing thread may have another current device (or none set yet).
  int cur = -1;
  const bool switch_device = cudaGetDevice(&cur) == cudaSuccess && cur != a.account->device;
  if (switch_device) (void)cudaSetDevice(a.account->device);
  // Called from ~Buffer, which must not throw; at process exit the runtime
  // may already be unloading, which is harmless to ignore.
  (void)cudaFree(p);
  if (switch_device) (void)cudaSetDevice(cur);
}

void count(MemoryAccount& a, size_t bytes) {
  const size_t now = a.held += bytes;
  size_t peak = a.peak.load();
  while (now > peak && !a.peak.compare_exchange_weak(peak, now)) {
  }
}

}  // namespace

std::shared_ptr<Buffer> device_alloc(const std::shared_ptr<MemoryAccount>& account, size_t bytes,
                                     const std::string& what) {
  bytes = std::max<size_t>(bytes, 256);
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // an out-of-memory cudaMalloc leaves no sticky error; clear the last-error slot
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    throw UserError(fmt::format(
        "out of GPU memory on cuda:{}: allocating {:.1f} MiB for {} failed; "
        "this backend already holds {:.1f} MiB "
        "(the device has {:.1f} MiB free of {:.1f} MiB). {}",
        account->device, mib(bytes), what, mib(account->held.load()), mib(free_b), mib(total_b), account->oom_hint));
  }
  CUDA_CHECK(e);
  ++account->allocations;
  {
    std::lock_guard<std::mutex> lock(registry().m);
    registry().live.emplace(p, Allocation{account, bytes});
  }
  count(*account, bytes);
  return std::make_shared<Buffer>(p, bytes, release);
}

GrowBuffer::GrowBuffer(std::shared_ptr<MemoryAccount> account, std::vector<cudaStream_t> users, const char* what)
    : account_(std::move(account)), users_(std::move(users)), what_(what) {}

void GrowBuffer::reserve(size_t bytes) {
  if (bytes <= this->bytes()) return;
  constexpr size_t kGranule = size_t(1) << 20;
  bytes = (bytes + kGranule - 1) / kGranule * kGranule;
  // Work queued on the users may still read the old storage; free it before
  // allocating so the peak does not count both.
  for (cudaStream_t s : users_) CUDA_CHECK(cudaStreamSynchronize(s));
  buf_.reset();
  buf_ = device_alloc(account_, bytes, what_);
}

PinnedBuffer::~PinnedBuffer() {
  if (p_) (void)cudaFreeHost(p_);  // no throwing from a destructor
}

void PinnedBuffer::reserve(size_t bytes) {
  if (bytes <= bytes_) return;
  bytes = std::max<size_t>(bytes, 4096);
  if (p_) CUDA_CHECK(cudaFreeHost(p_));
  p_ = nullptr;
  bytes_ = 0;
  CUDA_CHECK(cudaMallocHost(&p_, bytes));
  ++account_->allocations;
  bytes_ = bytes;
}

}  // namespace rn::cuda
