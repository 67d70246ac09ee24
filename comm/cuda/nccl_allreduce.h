// ncclAllReduce on device buffers: the comparison point for the ring.
#pragma once

#include <memory>

#include "comm/allreduce.h"

namespace rn::comm {

class Communicator;

// One NCCL communicator over comm's ranks (unique id broadcast through comm),
// on `device`. Collective: every rank of comm calls it. Throws AgreedError
// when two ranks share a GPU (NCCL does not support that). run(): ncclSum on
// the all-reducer's stream, then (average) the divide kernel, so the average
// rounds once like the ring's; waits with comm's timeout.
std::unique_ptr<Allreducer> make_nccl_allreducer(Communicator& comm, int device);

}  // namespace rn::comm
