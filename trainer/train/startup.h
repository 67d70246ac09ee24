// Start-up steps shared by training and --eval-only.
#pragma once

#include <functional>

namespace rn::comm {
class Communicator;
}

namespace rn {

// Runs `work` (start-up that reads files) on every rank, then the ranks
// agree: a rank that cannot (a path missing on its node, a damaged file)
// prints its reason, and every other rank stops too instead of waiting.
void agree_on_startup(comm::Communicator* world, const std::function<void()>& work);

// OpenMP threads for one rank: `configured` (train.threads) when > 0, else
// this node's cores divided among its `local_size` ranks (0, the OpenMP
// default, when it is alone).
int threads_per_rank(int configured, int local_size);

}  // namespace rn
