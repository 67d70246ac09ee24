// In-place all-reduce of a host buffer: the ring (ours) or MPI_Allreduce.
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
#include "comm/transport.h"

namespace rn::comm {

class Communicator;

enum class Algorithm { kRing, kMpi };
enum class ReduceOp { kSum, kAverage };

// "ring" | "mpi"; false for anything else.
bool parse_algorithm(const std::string& s, Algorithm* out);
const char* algorithm_name(Algorithm a);

class Allreducer {
 public:
  virtual ~Allreducer() = default;
  virtual void reserve(size_t max_elems, DType t) = 0;
  // data: count elements of type t, owned by the caller. info.op/index name
  // the call in a timeout message.
  virtual void run(void* data, size_t count, DType t, ReduceOp op, WaitInfo info) = 0;
};

// Ring over any transport; segment_bytes is the pipelining unit (>= 1 element).
std::unique_ptr<Allreducer> make_ring_allreducer(Transport& transport, size_t segment_bytes);
// MPI_Iallreduce on comm (bf16/fp16 through user-defined ops that add in fp32).
std::unique_ptr<Allreducer> make_mpi_allreducer(Communicator& comm);
std::unique_ptr<Allreducer> make_allreducer(Algorithm a, Communicator& comm, size_t segment_bytes);

}  // namespace rn::comm
