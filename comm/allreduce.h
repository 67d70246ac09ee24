// In-place all-reduce of a buffer: the ring (ours), MPI_Allreduce, or (GPU
// buffers only, comm/cuda/device_allreduce.h) NCCL.
//
//   auto ar = make_allreducer(Algorithm::kRing, comm, 256 * 1024);
//   ar->reserve(max_elems, DType::kF32);       // once, before the step loop
//   ar->run(grads, n, DType::kF32, ReduceOp::kAverage, WaitInfo{"bucket", 3});
//
// Any count (0, fewer than ranks, not divisible) and any world size. After
// run() every rank holds identical bits. reserve() preallocates scratch so
// run() does not allocate for counts up to max_elems.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "comm/dtype.h"
#include "comm/reduce_ops.h"
#include "comm/transport.h"

namespace rn::comm {

class Communicator;

enum class Algorithm { kRing, kMpi, kNccl };
enum class ReduceOp { kSum, kAverage };

// "ring" | "mpi" | "nccl"; false for anything else.
bool parse_algorithm(const std::string& s, Algorithm* out);
const char* algorithm_name(Algorithm a);

class Allreducer {
 public:
  virtual ~Allreducer() = default;
  virtual void reserve(size_t max_elems, DType t) = 0;
  // data: count elements of type t, owned by the caller. info.op/index name
  // the call in a timeout message. Returns with the result in place (for
  // device buffers: the work has completed, no stream left to wait for).
  virtual void run(void* data, size_t count, DType t, ReduceOp op, WaitInfo info) = 0;
  // Arithmetic and memory where run()'s data live (default: the host). Work
  // issued through ops() before run() is ordered before run() reads.
  virtual ReduceOps& ops() { return host_reduce_ops(); }
  // Where run() reduces, for the run log (device all-reducers say whether
  // MPI gets device pointers, pinned host copies, or NCCL does the work).
  virtual const char* memory() const { return "host memory"; }
};

// Ring over any transport; segment_bytes is the pipelining unit (>= 1
// element). ops: where the data live (device ops for GPU buffers; then the
// transport must read and write them in order with ops' work, as
// StagedTransport does); its scratch (two chunks) comes from ops.allocate.
// transport and ops must outlive the result.
std::unique_ptr<Allreducer> make_ring_allreducer(Transport& transport, size_t segment_bytes,
                                                 ReduceOps& ops = host_reduce_ops());
// Upper bound on the messages the ring has in flight at once (posted, not
// yet waited) for counts up to max_elems on `world` ranks, segment_elems
// elements per message: what a staging transport needs slots for.
size_t ring_messages_in_flight(int world, size_t max_elems, size_t segment_elems);
// MPI_Iallreduce on comm (bf16/fp16 through user-defined ops that add in fp32).
std::unique_ptr<Allreducer> make_mpi_allreducer(Communicator& comm);
// Host buffers. kNccl throws UserError (NCCL reduces GPU buffers only).
std::unique_ptr<Allreducer> make_allreducer(Algorithm a, Communicator& comm, size_t segment_bytes);

}  // namespace rn::comm
