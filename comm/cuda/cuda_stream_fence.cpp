#include "comm/cuda/cuda_stream_fence.h"

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "trainer/backend/cuda/cuda_check.h"

namespace rn::comm {
namespace {

class CudaStreamFence final : public StreamFence {
 public:
  CudaStreamFence(cudaStream_t compute, size_t buckets) : compute_(compute), events_(buckets, nullptr) {
    CUDA_CHECK(cudaGetDevice(&device_));
    // Blocking sync: the waiting communication thread sleeps instead of
    // spinning on a core the data loader or MPI progress could use.
    for (auto& e : events_) CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming | cudaEventBlockingSync));
  }
  ~CudaStreamFence() override {
    for (auto e : events_)
      if (e != nullptr) cudaEventDestroy(e);
  }

  void mark(size_t bucket) override { CUDA_CHECK(cudaEventRecord(event(bucket), compute_)); }
  void wait(size_t bucket) override {
    // The communication thread's first CUDA call may be this one: make the
    // compute device current so the runtime creates no context on device 0.
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaEventSynchronize(event(bucket)));
  }

 private:
  cudaEvent_t event(size_t bucket) {
    RN_CHECK(bucket < events_.size(),
             "stream fence: bucket " + std::to_string(bucket) + " of " + std::to_string(events_.size()));
    return events_[bucket];
  }

  cudaStream_t compute_;
  int device_ = 0;  // current at construction: the compute stream's
  std::vector<cudaEvent_t> events_;
};

}  // namespace

std::unique_ptr<StreamFence> make_cuda_stream_fence(void* compute_stream, size_t buckets) {
  return std::make_unique<CudaStreamFence>(static_cast<cudaStream_t>(compute_stream), buckets);
}

}  // namespace rn::comm
