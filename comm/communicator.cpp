#include "comm/communicator.h"

#include <fmt/format.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <thread>

#include "comm/mpi_check.h"

namespace rn::comm {
namespace {

constexpr int kTag = 7;

// Polls `req` until it completes or `timeout_s` pass without completion.
// Returns false on timeout. Spins briefly, then yields, then naps: ranks
// oversubscribed on few cores must not starve the peer they wait for.
bool poll(MPI_Request& req, double timeout_s) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  for (long spin = 0;; ++spin) {
    int done = 0;
    MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) return true;
    if (spin < 64) continue;
    const double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (waited > timeout_s) return false;
    if (waited < 1e-3) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

int to_int_count(size_t bytes) {
  RN_CHECK(bytes <= size_t(INT_MAX), "message larger than 2 GiB; lower comm.segment_kb");
  return static_cast<int>(bytes);
}

}  // namespace

void abort_job(const std::string& message, int exit_code) {
  int rank = 0, init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "resnet-train[rank %d]: %s\n", rank, message.c_str());
  std::fflush(stderr);
  if (init && !fin) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

void abort_job_on(const std::exception& e) {
  if (dynamic_cast<const UserError*>(&e)) abort_job(std::string("error: ") + e.what(), 2);
  abort_job(std::string("internal error: ") + e.what(), 1);
}

Communicator::Communicator(MPI_Comm comm, double timeout_s) : timeout_s_(timeout_s) {
  MPI_CHECK(MPI_Comm_dup(comm, &comm_));
  MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MPI_CHECK(MPI_Comm_size(comm_, &size_));
  reqs_.reserve(1024);
  free_.reserve(1024);
}

Communicator::~Communicator() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

Transport::Handle Communicator::take_slot() {
  if (!free_.empty()) {
    const Handle h = free_.back();
    free_.pop_back();
    return h;
  }
  reqs_.push_back(MPI_REQUEST_NULL);  // grows only until the largest call was seen
  return static_cast<Handle>(reqs_.size() - 1);
}

Transport::Handle Communicator::isend(const void* buf, size_t bytes, int peer) {
  const Handle h = take_slot();
  MPI_CHECK(MPI_Isend(buf, to_int_count(bytes), MPI_BYTE, peer, kTag, comm_, &reqs_[size_t(h)]));
  return h;
}

Transport::Handle Communicator::irecv(void* buf, size_t bytes, int peer) {
  const Handle h = take_slot();
  MPI_CHECK(MPI_Irecv(buf, to_int_count(bytes), MPI_BYTE, peer, kTag, comm_, &reqs_[size_t(h)]));
  return h;
}

void Communicator::wait(Handle h, const WaitInfo& info) {
  wait_request(reqs_[size_t(h)], info);
  free_.push_back(h);
}

void Communicator::wait_request(MPI_Request& req, const WaitInfo& info) {
  if (poll(req, timeout_s_)) return;
  std::string where = info.op;
  if (info.steps > 0) where += fmt::format(" #{} (step {}/{})", info.index, info.step + 1, info.steps);
  std::string who = info.peer >= 0
                        ? fmt::format("rank {} {} (it may have died, hung, or be stuck in an earlier collective)",
                                      info.peer, info.recv ? "never sent its data" : "never received our data")
                        : "at least one rank never joined it (it may have died, hung, or be behind)";
  abort_job(fmt::format("error: {} made no progress for {:g} s (comm.timeout): {}. Aborting the job; the last complete "
                        "checkpoint is unaffected.",
                        where, timeout_s_, who),
            kExitCommFailure);
}

void Communicator::barrier(const char* what) {
  MPI_Request r;
  MPI_CHECK(MPI_Ibarrier(comm_, &r));
  wait_request(r, WaitInfo{what});
}

void Communicator::broadcast(void* data, size_t bytes, int root, const char* what) {
  // Pieces of at most 1 GiB keep the count in an int.
  auto* p = static_cast<char*>(data);
  while (bytes > 0) {
    const size_t n = std::min<size_t>(bytes, size_t(1) << 30);
    MPI_Request r;
    MPI_CHECK(MPI_Ibcast(p, static_cast<int>(n), MPI_BYTE, root, comm_, &r));
    wait_request(r, WaitInfo{what});
    p += n;
    bytes -= n;
  }
}

void Communicator::allreduce_sum(double* data, int n, const char* what) {
  MPI_Request r;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, n, MPI_DOUBLE, MPI_SUM, comm_, &r));
  wait_request(r, WaitInfo{what});
}

void Communicator::allreduce_max(int64_t* data, int n, const char* what) {
  MPI_Request r;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, n, MPI_INT64_T, MPI_MAX, comm_, &r));
  wait_request(r, WaitInfo{what});
}

std::vector<uint64_t> Communicator::allgather(uint64_t value, const char* what) {
  std::vector<uint64_t> all(size_t(size_), 0);
  MPI_Request r;
  MPI_CHECK(MPI_Iallgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_, &r));
  wait_request(r, WaitInfo{what});
  return all;
}

}  // namespace rn::comm
