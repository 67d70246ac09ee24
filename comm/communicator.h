// An MPI communicator with a timeout on everything that waits.
//
// Every wait polls (MPI_Test) instead of blocking, so a peer that never
// arrives is reported and the job aborted with kExitCommFailure instead of
// hanging until the batch system's time limit. The timeout counts time
// without progress: a large transfer that keeps moving never expires.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "comm/transport.h"

namespace rn::comm {

// Exit status of a job taken down by a communication failure (a collective
// timed out, or a peer died).
inline constexpr int kExitCommFailure = 3;

// Prints "resnet-train[rank R]: <message>" to stderr and calls
// MPI_Abort on MPI_COMM_WORLD, which makes mpirun/srun end every rank.
[[noreturn]] void abort_job(const std::string& message, int exit_code);
// abort_job for an exception: "error: ..." and exit 2 for rn::UserError,
// "internal error: ..." and exit 1 otherwise.
[[noreturn]] void abort_job_on(const std::exception& e);

class Communicator : public Transport {
 public:
  // Duplicates `comm`, so this object's messages never match anyone else's.
  // timeout_s > 0: seconds without progress before the job is aborted.
  Communicator(MPI_Comm comm, double timeout_s);
  ~Communicator() override;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm mpi() const { return comm_; }
  double timeout() const { return timeout_s_; }
  void set_timeout(double seconds) { timeout_s_ = seconds; }

  // Transport: point-to-point on this communicator (one tag; ordered).
  Handle isend(const void* buf, size_t bytes, int peer) override;
  Handle irecv(void* buf, size_t bytes, int peer) override;
  void wait(Handle h, const WaitInfo& info) override;

  // Waits for a request of this communicator with the timeout (what: the
  // operation's name for the error message).
  void wait_request(MPI_Request& req, const WaitInfo& info);

  // Collectives, all with the timeout. `what` names them in errors.
  void barrier(const char* what);
  void broadcast(void* data, size_t bytes, int root, const char* what);
  // In-place element-wise sum of n doubles (metrics).
  void allreduce_sum(double* data, int n, const char* what);
  // In-place element-wise max of n int64 (flags).
  void allreduce_max(int64_t* data, int n, const char* what);
  // Every rank's value, indexed by rank.
  std::vector<uint64_t> allgather(uint64_t value, const char* what);

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  double timeout_s_;
  Handle take_slot();
  std::vector<MPI_Request> reqs_;  // slots of in-flight point-to-point ops
  std::vector<Handle> free_;
};

}  // namespace rn::comm
