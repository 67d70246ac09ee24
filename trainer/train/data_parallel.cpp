#include "trainer/train/data_parallel.h"

#include <fmt/format.h>

#include "trainer/core/error.h"
#include "trainer/core/hash.h"

namespace rn {

DataParallel::DataParallel(comm::Communicator& comm, ResNet& model, const DataParallelOptions& opts)
    : comm_(comm), model_(model) {
  if (comm.size() == 1) return;  // nothing to average
  ar_ = comm::make_allreducer(opts.algorithm, comm, opts.segment_bytes);
  std::vector<size_t> offsets;
  for (const auto& p : model.params().params()) offsets.push_back(p.offset);
  Tensor& g = model.params().flat_grads();
  sync_ = std::make_unique<comm::GradientSync>(*ar_, g.data(), size_t(model.params().param_count()), offsets,
                                               opts.sync);
  model.set_grad_ready_callback([this](size_t offset) { sync_->grads_ready(offset); });
}

DataParallel::~DataParallel() { model_.set_grad_ready_callback(nullptr); }

void DataParallel::broadcast_weights() {
  if (comm_.size() == 1) return;
  auto& ps = model_.params();
  comm_.broadcast(ps.flat_values().data(), size_t(ps.param_count()) * 4, 0, "broadcast of rank 0's initial weights");
  comm_.broadcast(ps.flat_buffers().data(), size_t(ps.buffer_count()) * 4, 0, "broadcast of rank 0's BN buffers");
}

void DataParallel::begin_backward() {
  if (sync_) sync_->begin_step();
}

double DataParallel::finish_backward() { return sync_ ? sync_->finish_step() : 0.0; }

const std::vector<comm::BucketTiming>& DataParallel::bucket_timings() const {
  static const std::vector<comm::BucketTiming> none;
  return sync_ ? sync_->timings() : none;
}

size_t DataParallel::buckets() const { return sync_ ? sync_->buckets() : 0; }

void DataParallel::check_weights(int64_t step) {
  if (comm_.size() == 1) return;
  auto& ps = model_.params();
  const auto hashes = comm_.allgather(fnv1a64(ps.flat_values().data(), size_t(ps.param_count()) * sizeof(float)),
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
  float* p = ps.flat_buffers().data();
  std::vector<double> v(p, p + ps.buffer_count());
  comm_.allreduce_sum(v.data(), int(v.size()), "average of BN running statistics");
  // num_batches_tracked is equal on every rank and stays so.
  for (size_t i = 0; i < v.size(); ++i) p[i] = float(v[i] / size());
}

}  // namespace rn
