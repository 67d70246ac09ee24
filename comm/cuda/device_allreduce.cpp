#include "comm/cuda/device_allreduce.h"

#include <mpi.h>

#include <algorithm>

#include "comm/communicator.h"
#include "comm/cuda/cuda_aware_mpi.h"
#include "comm/cuda/device_stream.h"
#include "comm/cuda/nccl_allreduce.h"
#include "comm/mpi_check.h"
#include "comm/staged_transport.h"

namespace rn::comm {
namespace {

class DeviceRingAllreducer final : public Allreducer {
 public:
  DeviceRingAllreducer(Communicator& comm, size_t segment_bytes, int device, Staging staging)
      : dev_(device), ring_(make_staged_ring_allreducer(comm, dev_.copier, staging, dev_.ops, segment_bytes)) {}

  void reserve(size_t max_elems, DType t) override {
    dev_.make_current();
    ring_->reserve(max_elems, t);
  }
  void run(void* data, size_t count, DType t, ReduceOp op, WaitInfo info) override {
    dev_.make_current();
    ring_->run(data, count, t, op,
               info);  // ends with ops.finish(): the stream is idle
  }
  ReduceOps& ops() override { return dev_.ops; }

 private:
  DeviceStream dev_;
  std::unique_ptr<Allreducer> ring_;  // uses dev_: declared after it
};

class DeviceMpiAllreducer final : public Allreducer {
 public:
  DeviceMpiAllreducer(Communicator& comm, int device, bool cuda_aware)
      : comm_(comm), dev_(device), host_(make_mpi_allreducer(comm)), cuda_aware_(cuda_aware) {}

  void reserve(size_t max_elems, DType t) override {
    if (direct(t)) return;
    const size_t bytes = max_elems * dtype_size(t);
    if (bytes <= pinned_bytes_) return;
    dev_.make_current();
    pinned_ = dev_.copier.alloc_host(bytes);
    pinned_bytes_ = bytes;
  }

  void run(void* data, size_t count, DType t, ReduceOp op, WaitInfo info) override {
    if (comm_.size() == 1 || count == 0) return;
    dev_.make_current();
    if (direct(t)) return run_on_device(static_cast<float*>(data), count, op, info);
    reserve(count, t);
    const size_t bytes = count * dtype_size(t);
    dev_.copier.d2h(pinned_.get(), data,
                    bytes);  // after the work queued through ops()
    dev_.copier.sync();
    host_->run(pinned_.get(), count, t, op, info);
    dev_.copier.h2d(data, pinned_.get(), bytes);
    dev_.copier.sync();
  }

  ReduceOps& ops() override { return dev_.ops; }

 private:
  // bf16/fp16 always go through the host: their MPI ops are host functions.
  bool direct(DType t) const { return cuda_aware_ && t == DType::kF32; }

  void run_on_device(float* data, size_t count, ReduceOp op, WaitInfo info) {
    dev_.ops.finish();  // MPI reads what the stream wrote
    float* p = data;
    for (size_t left = count; left > 0;) {  // int counts: pieces of at most 2^30 elements
      const size_t n = std::min<size_t>(left, size_t(1) << 30);
      MPI_Request r;
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_.mpi(), &r));
      comm_.wait_request(r, info);
      p += n;
      left -= n;
    }
    if (op == ReduceOp::kAverage) dev_.ops.divide(DType::kF32, data, count, float(comm_.size()));
    dev_.ops.finish();
  }

  Communicator& comm_;
  DeviceStream dev_;
  std::unique_ptr<Allreducer> host_;
  bool cuda_aware_;
  OwnedMemory pinned_;  // staging copy of the largest buffer (pinned)
  size_t pinned_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Allreducer> make_device_allreducer(Algorithm a, Communicator& comm, size_t segment_bytes, int device) {
  switch (a) {
    case Algorithm::kRing:
      RN_CHECK(segment_bytes >= 2, "ring all-reduce: segment must hold at least one element");
      return std::make_unique<DeviceRingAllreducer>(comm, segment_bytes, device,
                                                    mpi_is_cuda_aware() ? Staging::kNone : Staging::kPinnedHost);
    case Algorithm::kMpi:
      return std::make_unique<DeviceMpiAllreducer>(comm, device, mpi_is_cuda_aware());
    case Algorithm::kNccl:
      return make_nccl_allreducer(comm, device);
  }
  throw InternalError("unknown all-reduce algorithm");
}

}  // namespace rn::comm
