// Data parallelism for one model replica per rank.
//
// Every rank holds the full model, trains on its own share of each global
// batch and, during backward, averages gradients with the other ranks
// (comm::GradientSync: buckets overlapped with backward). Starting from
// rank 0's weights and applying the same averaged gradients, replicas stay
// identical; check_weights() verifies that with a hash.
//
// BN running statistics stay per rank during training (as in the paper and
// PyTorch DDP); average_buffers() makes them agree before evaluation and
// checkpoints.
//
// On a GPU backend (Backend::device() >= 0) the gradients are all-reduced in
// device memory (comm/cuda: the ring through CUDA-aware MPI or pinned
// staging, MPI, or NCCL), each bucket after an event recorded on the compute
// stream when backward reported it ready; the rare whole-model operations
// (broadcast, weight check, BN averaging) go through a host mirror.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "comm/allreduce.h"
#include "comm/communicator.h"
#include "comm/gradient_sync.h"
#include "comm/stream_fence.h"
#include "trainer/model/resnet.h"

namespace rn {

struct DataParallelOptions {
  comm::Algorithm algorithm = comm::Algorithm::kRing;
  size_t segment_bytes = 256 * 1024;
  comm::GradientSyncOptions sync;
};

class DataParallel {
 public:
  // comm: the world (size >= 1), model: this rank's replica (on its
  // backend's device); both outlive this object. Installs the model's
  // grad-ready callback.
  DataParallel(comm::Communicator& comm, ResNet& model, const DataParallelOptions& opts);
  ~DataParallel();

  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  comm::Communicator& comm() { return comm_; }

  // Copies rank 0's parameters and buffers to every rank.
  void broadcast_weights();
  // Call before model.backward(); gradients are averaged as they become
  // ready (from the second backward on: see data_parallel.cpp).
  void begin_backward();
  // Waits for the averaged gradients; returns the seconds spent waiting
  // (communication not hidden behind backward).
  double finish_backward();
  // Bucket timings of the last step (steady-clock seconds).
  const std::vector<comm::BucketTiming>& bucket_timings() const;
  size_t buckets() const;
  // Where gradients are reduced, for the run log (Allreducer::memory).
  const char* memory() const { return ar_->memory(); }

  // Throws InternalError naming the ranks whose weights differ from rank 0's.
  void check_weights(int64_t step);
  // Averages BN running statistics (every buffer) over ranks.
  void average_buffers();

 private:
  // The flat tensor as a host array: in place on a host backend, else
  // through mirror_ (to_host); put_back() uploads what was changed.
  float* host(Tensor& t);
  void put_back(Tensor& t);

  comm::Communicator& comm_;
  ResNet& model_;
  Backend& be_;
  std::unique_ptr<comm::Allreducer> ar_;
  std::unique_ptr<comm::StreamFence> fence_;  // device backends only
  std::unique_ptr<comm::GradientSync> sync_;
  std::vector<float> mirror_;
  bool backward_done_ = false;  // a first backward has finished
  bool overlapped_ = false;     // this backward overlaps the all-reduce
  size_t pool_slots_ = 0;       // the gradient pool's storage count at begin_backward
};

}  // namespace rn
