// StreamFence with CUDA events: mark(i) records event i on the compute
// stream, wait(i) blocks the calling (communication) thread until it has
// completed. A host wait, not cudaStreamWaitEvent, because every all-reduce
// path may hand the bucket to MPI from the host (staged copies, CUDA-aware
// MPI), not only to work on the communication stream.
#pragma once

#include <cstddef>
#include <memory>

#include "comm/stream_fence.h"

namespace rn::comm {

// compute_stream: a cudaStream_t (nullptr: the legacy default stream), not
// owned. buckets: events to create (bucket indices 0 .. buckets-1; any upper
// bound of GradientSync::buckets(), e.g. the parameter count). Creates the
// events once, on the current device, which must be the compute stream's.
std::unique_ptr<StreamFence> make_cuda_stream_fence(void* compute_stream, size_t buckets);

}  // namespace rn::comm
