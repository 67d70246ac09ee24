// MPI start-up for a training process: MPI_Init_thread, who am I, which
// ranks share my node.
//
// Threading: gradient all-reduces run on one communication thread while the
// main thread computes backward; the main thread calls MPI only between steps
// when that thread is idle (GradientSync::finish_step returned). So at most
// one thread is inside MPI at any time and MPI_THREAD_SERIALIZED suffices; we
// ask for MULTIPLE (free when available) and require SERIALIZED.
#pragma once

#include <string>

namespace rn::comm {

struct WorldInfo {
  int rank = 0, size = 1;
  // Position among the ranks on this node (MPI_Comm_split_type, shared
  // memory): picks "this rank's" GPU or slice of CPU cores.
  int local_rank = 0, local_size = 1;
  std::string host;
};

class MpiSession {
 public:
  // Works under mpirun/mpiexec, srun (PMIx) and as a singleton (plain exec).
  // Sets rn::process_identity().rank. Throws InternalError if MPI lacks
  // MPI_THREAD_SERIALIZED.
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  const WorldInfo& world() const { return info_; }

 private:
  WorldInfo info_;
};

}  // namespace rn::comm
