// Bucketed, overlapped gradient averaging across ranks.
//
// Parameters live in one flat fp32 buffer in declaration (= forward) order,
// so "reverse order of use" is the buffer read from the end. Buckets are
// contiguous ranges cut from the end, each at least bucket_bytes (of fp32)
// and never splitting a parameter; bucket 0 holds the classifier.
//
// During backward the model reports a watermark: every gradient at offset
// >= W is final (ResNet::set_grad_ready_callback). Each bucket whose range
// lies above the watermark is handed, in bucket order, to a communication
// thread that averages it in place while backward continues. finish_step()
// waits only for what is still in flight; that wait is the exposed
// communication time reported per step.
//
// With a wire dtype of bf16/fp16 a bucket is packed into a preallocated
// staging buffer, all-reduced (fp32 accumulation) and unpacked, all through
// the all-reducer's ReduceOps, so the gradients may live on a GPU: then
// opts.fence orders each bucket's all-reduce after the kernels computing it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "comm/allreduce.h"
#include "comm/reduce_ops.h"
#include "comm/ring_schedule.h"
#include "comm/stream_fence.h"

namespace rn::comm {

struct GradientSyncOptions {
  size_t bucket_bytes = size_t(25) << 20;
  DType wire = DType::kF32;
  // false: nothing starts before finish_step (all-reduce after backward).
  bool overlap = true;
  // Device gradients: marked per bucket when handed over, waited for before
  // its all-reduce (not owned; outlives the GradientSync). nullptr: host.
  StreamFence* fence = nullptr;
};

// Times of one bucket in the last step, in seconds on the steady clock.
struct BucketTiming {
  double ready = 0;  // handed to the communication thread
  double start = 0;  // all-reduce began
  double end = 0;    // all-reduce finished
};

class GradientSync {
 public:
  // grads: count fp32 elements where ar works (host memory, or device memory
  // for a device all-reducer), owned by the caller, alive as long as this
  // object. param_offsets: start offset of every parameter, ascending. ar is
  // used only from the communication thread (after reserve() here).
  GradientSync(Allreducer& ar, float* grads, size_t count, const std::vector<size_t>& param_offsets,
               GradientSyncOptions opts);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  size_t buckets() const { return buckets_.size(); }
  Range bucket(size_t i) const { return buckets_[i]; }

  // Call before backward. overlap = false: this step hands no bucket to the
  // communication thread before finish_step, whatever opts.overlap says.
  void begin_step(bool overlap = true);
  // Every gradient at element offset >= offset is final.
  void grads_ready(size_t offset);
  // Launches what is left, waits for all buckets; returns the seconds this
  // call waited (communication not hidden behind backward). Rethrows an
  // error from the communication thread.
  double finish_step();
  // Per bucket, for the step that finish_step() last completed.
  const std::vector<BucketTiming>& timings() const { return timings_; }

  static double now();

 private:
  void launch_up_to(size_t offset);
  void mark(size_t bucket);  // opts_.fence->mark, when there is a fence
  void comm_loop();

  Allreducer& ar_;
  float* grads_;
  GradientSyncOptions opts_;
  std::vector<Range> buckets_;
  OwnedMemory staging_;  // wire-dtype copy of the whole buffer (bf16/fp16 only), from ar.ops()
  std::vector<BucketTiming> timings_;

  std::mutex mu_;
  std::condition_variable cv_;
  size_t launched_ = 0;   // buckets handed over this step (main thread writes)
  size_t marked_ = 0;     // without overlap: buckets whose fence is marked (main thread only)
  bool overlap_step_;     // this step's overlap (main thread only)
  size_t completed_ = 0;  // buckets finished this step (comm thread writes)
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace rn::comm
