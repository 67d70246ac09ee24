// Gradient all-reduce of GPU buffers (comm.allreduce with train.device = cuda).
//
//   auto ar = make_device_allreducer(Algorithm::kRing, comm, 256 * 1024, device);
//   ar->reserve(max_elems, DType::kF32);                          // scratch, pinned slots: once
//   ar->run(device_ptr, n, DType::kF32, ReduceOp::kAverage, info);  // returns done
//
// kRing: the ring executor (ring_allreduce.cpp) with reduction kernels on the
//   all-reducer's stream, over a StagedTransport on comm: messages staged
//   through pinned host slots, or handed to MPI as device pointers when
//   mpi_is_cuda_aware() (comm/cuda/cuda_aware_mpi.h). Bit-identical to the
//   host ring for the same inputs and world.
// kMpi: the host MPI all-reducer on a pinned host copy of the buffer (also
//   where MPI is CUDA-aware: its non-blocking collectives are not).
// kNccl: comm/cuda/nccl_allreduce.h (one GPU per rank).
//
// The all-reducer owns a non-blocking stream on `device` and makes `device`
// current on the calling thread in reserve() and run(). run() takes device
// pointers and returns with the work completed; ops() is the CUDA ReduceOps
// on that stream (GradientSync packs bf16/fp16 wire buffers with it).
#pragma once

#include <cstddef>
#include <memory>

#include "comm/allreduce.h"
#include "comm/cuda/cuda_stream_fence.h"  // make_cuda_stream_fence: the other half DataParallel needs

namespace rn::comm {

class Communicator;

// comm and its MPI must outlive the result. Collective for kNccl.
std::unique_ptr<Allreducer> make_device_allreducer(Algorithm a, Communicator& comm, size_t segment_bytes, int device);

}  // namespace rn::comm
