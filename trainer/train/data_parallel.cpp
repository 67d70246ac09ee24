#include "trainer/train/data_parallel.h"

#include <fmt/format.h>

#include "trainer/core/error.h"
#include "trainer/core/hash.h"

#ifdef RN_HAVE_CUDA
#include "comm/cuda/device_allreduce.h"
#endif

namespace rn {

DataParallel::DataParallel(comm::Communicator& comm, ResNet& model, const DataParallelOptions& opts)
    : comm_(comm), model_(model), be_(model.backend()) {
  if (comm.size() == 1) return;  // nothing to average
  std::vector<size_t> offsets;
  for (const auto& p : model.params().params()) offsets.push_back(p.offset);
  comm::GradientSyncOptions sync = opts.sync;
  if (be_.device() >= 0) {
#ifdef RN_HAVE_CUDA
    ar_ = comm::make_device_allreducer(opts.algorithm, comm, opts.segment_bytes, be_.device());
    fence_ = comm::make_cuda_stream_fence(be_.stream(), offsets.size());
    sync.fence = fence_.get();
#else
    throw InternalError("a device backend in a build without CUDA");
#endif
  } else {
    ar_ = comm::make_allreducer(opts.algorithm, comm, opts.segment_bytes);
  }
  Tensor& g = model.params().flat_grads();
  sync_ = std::make_unique<comm::GradientSync>(*ar_, g.data(), size_t(model.params().flat_size()), offsets, sync);
  model.set_grad_ready_callback([this](size_t offset) { sync_->grads_ready(offset); });
}

DataParallel::~DataParallel() { model_.set_grad_ready_callback(nullptr); }

float* DataParallel::host(Tensor& t) {
  if (const float* p = be_.host_view(t)) return const_cast<float*>(p);
  mirror_.resize(size_t(t.numel()));
  be_.to_host(t, mirror_.data());
  return mirror_.data();
}

void DataParallel::put_back(Tensor& t) {
  if (be_.host_view(t) == nullptr) be_.from_host(mirror_.data(), t);
}

void DataParallel::broadcast_weights() {
  if (comm_.size() == 1) return;
  auto& ps = model_.params();
  comm_.broadcast(host(ps.flat_values()), size_t(ps.flat_size()) * 4, 0, "broadcast of rank 0's initial weights");
  put_back(ps.flat_values());
  comm_.broadcast(host(ps.flat_buffers()), size_t(ps.flat_buffer_size()) * 4, 0, "broadcast of rank 0's BN buffers");
  put_back(ps.flat_buffers());
}

void DataParallel::begin_backward() {
  // The first backward grows the model's gradient pool (TensorPool; device
  // allocations on a GPU), so nothing is all-reduced until it ends: an
  // allocation that synchronises the device would wait for NCCL kernels
  // that wait for the other ranks. Later steps (same batch shape, same
  // calls) allocate nothing and overlap as configured.
  overlapped_ = backward_done_;
  pool_slots_ = model_.grad_pool().slots();
  if (sync_) sync_->begin_step(overlapped_);
}

double DataParallel::finish_backward() {
  const double waited = sync_ ? sync_->finish_step() : 0.0;
  RN_CHECK(!overlapped_ || model_.grad_pool().slots() == pool_slots_,
           "the gradient pool grew during a backward overlapped with the all-reduce");
  backward_done_ = true;
  return waited;
}

const std::vector<comm::BucketTiming>& DataParallel::bucket_timings() const {
  static const std::vector<comm::BucketTiming> none;
  return sync_ ? sync_->timings() : none;
}

size_t DataParallel::buckets() const { return sync_ ? sync_->buckets() : 0; }

void DataParallel::check_weights(int64_t step) {
  if (comm_.size() == 1) return;
  auto& ps = model_.params();
  const auto hashes = comm_.allgather(fnv1a64(host(ps.flat_values()), size_t(ps.flat_size()) * sizeof(float)),
                                      "weight consistency check");
  std::string differ;
  for (size_t r = 1; r < hashes.size(); ++r)
    if (hashes[r] != hashes[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (!differ.empty())
    throw InternalError(fmt::format("weight check at step {}: the weights of rank(s) {} differ from rank 0's; the "
                                    "replicas have diverged (non-deterministic reduction or memory corruption)",
                                    step, differ));
}

void DataParallel::average_buffers() {
  if (comm_.size() == 1) return;
  // A few KB per BN layer, once per evaluation: through doubles, exactly.
  auto& ps = model_.params();
  float* p = host(ps.flat_buffers());
  std::vector<double> v(p, p + ps.flat_buffer_size());
  comm_.allreduce_sum(v.data(), int(v.size()), "average of BN running statistics");
  // num_batches_tracked is equal on every rank and stays so.
  for (size_t i = 0; i < v.size(); ++i) p[i] = float(v[i] / size());
  put_back(ps.flat_buffers());
}

}  // namespace rn
