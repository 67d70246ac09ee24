// The ring all-reduce schedule, independent of any transport.
//
// N ranks in a ring; rank r sends to r+1 and receives from r-1 (mod N). The
// buffer of `count` elements is cut into N chunks: chunk c starts at
// c*q + min(c, m) and holds q + (c < m ? 1 : 0) elements, where q = count / N
// and m = count % N (so chunks differ by at most one element, and some are
// empty when count < N).
//
// Reduce-scatter, steps s = 0 .. N-2: rank r sends chunk (r - s) mod N and
//   receives chunk (r - s - 1) mod N, adding it into its own copy. After N-1
//   steps rank r holds the full sum of chunk (r + 1) mod N ("owned").
// All-gather, steps s = 0 .. N-2: rank r sends chunk (r + 1 - s) mod N and
//   receives chunk (r - s) mod N, overwriting its copy. Every rank ends with
//   the bits its owner computed, so all ranks agree exactly.
//
// In both phases the chunk sent at step s+1 is the one received at step s,
// which lets the executor forward each segment as soon as it arrives. Each
// rank sends 2(N-1) chunks, i.e. 2(N-1)/N of the buffer: bandwidth-optimal.
// Chunks are cut into segments of at most `segment` elements, the unit of
// every message, so transfer and reduction overlap.
#pragma once

#include <cstddef>

namespace rn::comm {

struct Range {
  size_t begin = 0, end = 0;  // elements, [begin, end)
  size_t size() const { return end - begin; }
};

class RingSchedule {
 public:
  enum class Phase { kReduceScatter, kAllGather };
  struct Step {
    Phase phase;
    int send_chunk;  // chunk index sent to right()
    int recv_chunk;  // chunk index received from left()
  };

  // world >= 1, 0 <= rank < world, segment >= 1 (elements).
  RingSchedule(int world, int rank, size_t count, size_t segment);

  int world() const { return n_; }
  int rank() const { return rank_; }
  int right() const { return (rank_ + 1) % n_; }
  int left() const { return (rank_ + n_ - 1) % n_; }
  // Steps per phase: N - 1.
  int phase_steps() const { return n_ - 1; }
  // s in [0, 2(N-1)): the first N-1 are reduce-scatter, the rest all-gather.
  Step step(int s) const;
  // The chunk this rank holds fully reduced after reduce-scatter.
  int owned_chunk() const { return (rank_ + 1) % n_; }

  Range chunk(int c) const;
  size_t max_chunk() const { return q_ + (m_ ? 1 : 0); }
  size_t segments(int c) const;
  Range segment(int c, size_t k) const;

 private:
  int mod(int v) const { return ((v % n_) + n_) % n_; }
  int n_, rank_;
  size_t count_, q_, m_, seg_;
};

}  // namespace rn::comm
