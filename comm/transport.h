// Point-to-point transport used by the ring all-reduce executor.
//
// The schedule (ring_schedule.h) says which chunk goes where; a Transport
// moves bytes: the Communicator (host memory over MPI_Isend/MPI_Irecv) and
// StagedTransport (device buffers, through pinned host slots or CUDA-aware MPI).
#pragma once

#include <cstddef>

namespace rn::comm {

// What an operation was part of, printed when it times out.
struct WaitInfo {
  const char* op = "";  // e.g. "ring all-reduce"
  int index = 0;        // bucket number or call number
  int step = 0, steps = 0;
  int peer = -1;
  bool recv = false;
};

class Transport {
 public:
  using Handle = int;
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Start a send/receive of `bytes` bytes; the buffer must stay valid (and,
  // for receives, untouched) until wait() returns. Messages between a pair
  // of ranks are matched in the order they were posted.
  virtual Handle isend(const void* buf, size_t bytes, int peer) = 0;
  virtual Handle irecv(void* buf, size_t bytes, int peer) = 0;
  // isend of bytes that a receive of this transport wrote into buf (its
  // wait() has returned) and that nothing has changed since: the ring's
  // all-gather passing a segment on. A transport that staged the receive
  // may send its staged copy instead of reading buf back.
  virtual Handle forward(const void* buf, size_t bytes, int peer) { return isend(buf, bytes, peer); }
  // Blocks until the operation completes. When it makes no progress for the
  // configured timeout the job is aborted with a message built from `info`.
  virtual void wait(Handle h, const WaitInfo& info) = 0;
};

}  // namespace rn::comm
