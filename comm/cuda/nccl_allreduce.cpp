#include "comm/cuda/nccl_allreduce.h"

#include <fmt/format.h>
#include <nccl.h>

#include <chrono>
#include <thread>

#include "comm/communicator.h"
#include "comm/cuda/device_stream.h"
#include "comm/cuda/nccl_check.h"
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/core/hash.h"

namespace rn::comm {
namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::kF32:
      return ncclFloat32;
    case DType::kBF16:
      return ncclBfloat16;
    case DType::kF16:
      return ncclFloat16;
  }
  return ncclFloat32;
}

// NCCL does not support two ranks of one communicator on one GPU (it may
// hang or refuse): say so before ncclCommInitRank. Every rank sees the same
// gathered list, so every rank throws together.
void require_one_gpu_per_rank(Communicator& comm, int device) {
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  const auto ids = comm.allgather(fnv1a64(prop.uuid.bytes, sizeof prop.uuid.bytes), "exchange of GPU ids for NCCL");
  for (size_t a = 0; a < ids.size(); ++a)
    for (size_t b = a + 1; b < ids.size(); ++b)
      if (ids[a] == ids[b])
        throw AgreedError(
            fmt::format("comm.allreduce = nccl needs one GPU per rank, but "
                        "ranks {} and {} share a GPU (NCCL does not support "
                        "several ranks on one device); use comm.allreduce = "
                        "ring or mpi, or start at most one rank per GPU",
                        a, b));
}

class NcclAllreducer final : public Allreducer {
 public:
  NcclAllreducer(Communicator& comm, int device) : comm_(comm), dev_(device) {
    dev_.make_current();
    require_one_gpu_per_rank(comm, device);
    ncclUniqueId id{};
    if (comm.rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    comm.broadcast(&id, sizeof id, 0, "broadcast of the NCCL unique id");
    NCCL_CHECK(ncclCommInitRank(&nccl_, comm.size(), id, comm.rank()));
  }
  ~NcclAllreducer() override {
    if (nccl_ != nullptr) ncclCommDestroy(nccl_);
  }

  void reserve(size_t, DType) override {}  // NCCL's buffers come with the communicator

  void run(void* data, size_t count, DType t, ReduceOp op, WaitInfo info) override {
    if (comm_.size() == 1 || count == 0) return;
    dev_.make_current();
    // Sum, then divide once: the average rounds like the ring's (ncclAvg
    // would pre-scale every input by 1/N and round differently).
    NCCL_CHECK(ncclAllReduce(data, data, count, nccl_type(t), ncclSum, nccl_, dev_.stream.get()));
    if (op == ReduceOp::kAverage) dev_.ops.divide(t, data, count, float(comm_.size()));
    wait(info);
  }

  ReduceOps& ops() override { return dev_.ops; }
  const char* memory() const override { return "device buffers (NCCL)"; }

 private:
  // Polls the stream like Communicator polls MPI: an asynchronous NCCL error
  // throws, no progress for comm.timeout aborts the job.
  void wait(const WaitInfo& info) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    for (long spin = 0;; ++spin) {
      const cudaError_t e = cudaStreamQuery(dev_.stream.get());
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) CUDA_CHECK(e);
      ncclResult_t async = ncclSuccess;
      NCCL_CHECK(ncclCommGetAsyncError(nccl_, &async));
      if (async != ncclSuccess && async != ncclInProgress) {
        ncclCommAbort(nccl_);
        nccl_ = nullptr;
        NCCL_CHECK(async);
      }
      if (spin < 64) continue;
      const double waited = std::chrono::duration<double>(clock::now() - start).count();
      if (waited > comm_.timeout()) {
        ncclCommAbort(nccl_);
        nccl_ = nullptr;
        abort_job(fmt::format("error: {} #{} (ncclAllReduce) made no progress "
                              "for {:g} s (comm.timeout): a rank may "
                              "have died, hung, or be stuck in an earlier "
                              "collective. Aborting the job; the last "
                              "complete checkpoint is unaffected.",
                              info.op, info.index, comm_.timeout()),
                  kExitCommFailure);
      }
      if (waited < 1e-3)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  Communicator& comm_;
  DeviceStream dev_;
  ncclComm_t nccl_ = nullptr;
};

}  // namespace

std::unique_ptr<Allreducer> make_nccl_allreducer(Communicator& comm, int device) {
  return std::make_unique<NcclAllreducer>(comm, device);
}

}  // namespace rn::comm
