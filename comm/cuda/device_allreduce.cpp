#include "comm/cuda/device_allreduce.h"

#include "comm/communicator.h"
#include "comm/cuda/cuda_aware_mpi.h"
#include "comm/cuda/device_stream.h"
#include "comm/cuda/nccl_allreduce.h"
#include "comm/staged_transport.h"
#include "trainer/core/error.h"

namespace rn::comm {
namespace {

class DeviceRingAllreducer final : public Allreducer {
 public:
  DeviceRingAllreducer(Communicator& comm, size_t segment_bytes, int device, Staging staging)
      : staging_(staging),
        dev_(device),
        ring_(make_staged_ring_allreducer(comm, dev_.copier, staging, dev_.ops, segment_bytes)) {}

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
  const char* memory() const override {
    return staging_ == Staging::kNone ? "device buffers handed to CUDA-aware MPI"
                                      : "device buffers staged through pinned host memory";
  }

 private:
  Staging staging_;
  DeviceStream dev_;
  std::unique_ptr<Allreducer> ring_;  // uses dev_: declared after it
};

// MPI's own all-reduce on a copy in pinned host memory. Never on device
// pointers, even where MPI is CUDA-aware: Open MPI's CUDA support covers
// point-to-point and blocking collectives, and MPI_Iallreduce (which the
// timeout needs) would run its host reduction on device memory.
class DeviceMpiAllreducer final : public Allreducer {
 public:
  DeviceMpiAllreducer(Communicator& comm, int device)
      : comm_(comm), dev_(device), host_(make_mpi_allreducer(comm)) {}

  void reserve(size_t max_elems, DType t) override {
    const size_t bytes = max_elems * dtype_size(t);
    if (bytes <= pinned_bytes_) return;
    dev_.make_current();
    pinned_ = dev_.copier.alloc_host(bytes);
    pinned_bytes_ = bytes;
  }

  void run(void* data, size_t count, DType t, ReduceOp op, WaitInfo info) override {
    if (comm_.size() == 1 || count == 0) return;
    dev_.make_current();
    reserve(count, t);
    const size_t bytes = count * dtype_size(t);
    dev_.copier.d2h(pinned_.get(), data, bytes);  // after the work queued through ops()
    dev_.copier.sync();
    host_->run(pinned_.get(), count, t, op, info);
    dev_.copier.h2d(data, pinned_.get(), bytes);
    dev_.copier.sync();
  }

  ReduceOps& ops() override { return dev_.ops; }
  const char* memory() const override { return "a pinned host copy of the device buffers"; }

 private:
  Communicator& comm_;
  DeviceStream dev_;
  std::unique_ptr<Allreducer> host_;
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
      return std::make_unique<DeviceMpiAllreducer>(comm, device);
    case Algorithm::kNccl:
      return make_nccl_allreducer(comm, device);
  }
  throw InternalError("unknown all-reduce algorithm");
}

}  // namespace rn::comm
