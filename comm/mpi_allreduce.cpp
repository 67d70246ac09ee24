// MPI_Allreduce (as MPI_Iallreduce, to keep the timeout) for comparison with
// the ring. MPI has no bf16/fp16 types, so those travel as 16-bit integers
// with user-defined ops that add in fp32, the same arithmetic as the ring.
#include <climits>

#include "comm/allreduce.h"
#include "comm/communicator.h"
#include "comm/mpi_check.h"
#include "trainer/core/error.h"

namespace rn::comm {
namespace {

extern "C" void add_bf16(void* in, void* inout, int* len, MPI_Datatype*) {
  reduce_add(DType::kBF16, inout, in, size_t(*len));
}
extern "C" void add_fp16(void* in, void* inout, int* len, MPI_Datatype*) {
  reduce_add(DType::kF16, inout, in, size_t(*len));
}

class MpiAllreducer final : public Allreducer {
 public:
  explicit MpiAllreducer(Communicator& c) : c_(c) {
    MPI_CHECK(MPI_Op_create(add_bf16, /*commute=*/1, &op_bf16_));
    MPI_CHECK(MPI_Op_create(add_fp16, /*commute=*/1, &op_fp16_));
  }
  ~MpiAllreducer() override {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) {
      MPI_Op_free(&op_bf16_);
      MPI_Op_free(&op_fp16_);
    }
  }

  void reserve(size_t, DType) override {}

  void run(void* data, size_t count, DType t, ReduceOp op, WaitInfo info) override {
    if (c_.size() == 1 || count == 0) return;
    const MPI_Datatype type = t == DType::kF32 ? MPI_FLOAT : MPI_UINT16_T;
    const MPI_Op mop = t == DType::kF32 ? MPI_SUM : t == DType::kBF16 ? op_bf16_ : op_fp16_;
    char* p = static_cast<char*>(data);
    size_t left = count;
    while (left > 0) {  // int counts: pieces of at most 2^30 elements
      const size_t n = std::min<size_t>(left, size_t(1) << 30);
      MPI_Request r;
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p, static_cast<int>(n), type, mop, c_.mpi(), &r));
      c_.wait_request(r, info);
      if (op == ReduceOp::kAverage) divide(t, p, n, float(c_.size()));
      p += n * dtype_size(t);
      left -= n;
    }
  }

 private:
  Communicator& c_;
  MPI_Op op_bf16_ = MPI_OP_NULL, op_fp16_ = MPI_OP_NULL;
};

}  // namespace

std::unique_ptr<Allreducer> make_mpi_allreducer(Communicator& comm) { return std::make_unique<MpiAllreducer>(comm); }

std::unique_ptr<Allreducer> make_allreducer(Algorithm a, Communicator& comm, size_t segment_bytes) {
  switch (a) {
    case Algorithm::kMpi:
      return make_mpi_allreducer(comm);
    case Algorithm::kNccl:
      throw UserError("comm.allreduce = nccl needs train.device = cuda");
    case Algorithm::kRing:
      break;
  }
  return make_ring_allreducer(comm, segment_bytes);
}

bool parse_algorithm(const std::string& s, Algorithm* out) {
  if (s == "ring")
    *out = Algorithm::kRing;
  else if (s == "mpi")
    *out = Algorithm::kMpi;
  else if (s == "nccl")
    *out = Algorithm::kNccl;
  else
    return false;
  return true;
}

const char* algorithm_name(Algorithm a) {
  switch (a) {
    case Algorithm::kRing:
      return "ring";
    case Algorithm::kMpi:
      return "mpi";
    case Algorithm::kNccl:
      return "nccl";
  }
  return "?";
}

}  // namespace rn::comm
