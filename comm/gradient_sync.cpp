#include "comm/gradient_sync.h"

#include "trainer/core/error.h"

namespace rn::comm {

double GradientSync::now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

GradientSync::GradientSync(Allreducer& ar, float* grads, size_t count, const std::vector<size_t>& param_offsets,
                           GradientSyncOptions opts)
    : ar_(ar), grads_(grads), opts_(opts), overlap_step_(opts.overlap) {
  RN_CHECK(!param_offsets.empty() && param_offsets.front() == 0, "gradient buckets need parameters from offset 0");
  const size_t min_elems = std::max<size_t>(1, opts.bucket_bytes / sizeof(float));
  size_t end = count;
  for (size_t i = param_offsets.size(); i-- > 0;) {
    const size_t begin = param_offsets[i];
    if (end - begin >= min_elems || i == 0) {
      buckets_.push_back(Range{begin, end});
      end = begin;
    }
  }
  size_t largest = 0;
  for (const auto& b : buckets_) largest = std::max(largest, b.size());
  ar_.reserve(largest, opts.wire);
  if (opts.wire != DType::kF32) staging_ = ar_.ops().allocate(count * dtype_size(opts.wire));
  timings_.resize(buckets_.size());
  thread_ = std::thread([this] { comm_loop(); });
}

GradientSync::~GradientSync() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void GradientSync::begin_step(bool overlap) {
  std::lock_guard<std::mutex> lock(mu_);
  RN_CHECK(completed_ == launched_, "begin_step while buckets are in flight");
  launched_ = 0;
  completed_ = 0;
  marked_ = 0;
  overlap_step_ = opts_.overlap && overlap;
}

void GradientSync::grads_ready(size_t offset) {
  if (overlap_step_) {
    launch_up_to(offset);
  } else {
    // Marked now all the same: the fence must not also wait for what the
    // caller queues between backward and finish_step (the next batch).
    while (marked_ < buckets_.size() && buckets_[marked_].begin >= offset) mark(marked_++);
  }
}

void GradientSync::mark(size_t bucket) {
  if (opts_.fence) opts_.fence->mark(bucket);
}

void GradientSync::launch_up_to(size_t offset) {
  size_t n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    n = launched_;
    while (n < buckets_.size() && buckets_[n].begin >= offset) {
      if (n >= marked_) mark(n);  // before the comm thread can see bucket n
      timings_[n++].ready = now();
    }
    if (n == launched_) return;
    launched_ = n;
  }
  cv_.notify_all();
}

double GradientSync::finish_step() {
  launch_up_to(0);
  const double t0 = now();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return completed_ == buckets_.size() || error_; });
  if (error_) std::rethrow_exception(error_);
  return now() - t0;
}

void GradientSync::comm_loop() {
  for (;;) {
    size_t next;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || completed_ < launched_; });
      if (stop_) return;
      next = completed_;
    }
    const Range b = buckets_[next];
    BucketTiming& tm = timings_[next];
    try {
      if (opts_.fence) opts_.fence->wait(next);  // the kernels computing bucket `next` have run
      tm.start = now();
      const WaitInfo info{"gradient all-reduce of bucket", int(next)};
      if (opts_.wire == DType::kF32) {
        ar_.run(grads_ + b.begin, b.size(), DType::kF32, ReduceOp::kAverage, info);
      } else {
        ReduceOps& ops = ar_.ops();
        void* wire = static_cast<char*>(staging_.get()) + b.begin * dtype_size(opts_.wire);
        ops.convert(opts_.wire, wire, DType::kF32, grads_ + b.begin, b.size());
        ar_.run(wire, b.size(), opts_.wire, ReduceOp::kAverage, info);
        ops.convert(DType::kF32, grads_ + b.begin, opts_.wire, wire, b.size());
        ops.finish();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    tm.end = now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++completed_;
    }
    cv_.notify_all();
  }
}

}  // namespace rn::comm
