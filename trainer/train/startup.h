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

// This rank's share of the node's cores, for its compute and loader
// threads: the CPUs of its affinity mask when the launcher bound it to a
// subset (srun's task binding, mpirun --bind-to core, a cgroup), else
// the node's cores divided among its `local_size` ranks. At least 1.
int cores_per_rank(int local_size);

// OpenMP threads for one rank: `configured` (train.threads) when > 0, else
// cores_per_rank (0, the OpenMP default, when alone and unbound).
int threads_per_rank(int configured, int local_size);

}  // namespace rn
