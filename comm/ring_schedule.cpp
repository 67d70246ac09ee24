#include "comm/ring_schedule.h"

#include <algorithm>

#include "trainer/core/error.h"

namespace rn::comm {

RingSchedule::RingSchedule(int world, int rank, size_t count, size_t segment)
    : n_(world), rank_(rank), count_(count), seg_(segment) {
  RN_CHECK(world >= 1 && rank >= 0 && rank < world, "ring schedule: bad rank/world");
  RN_CHECK(segment >= 1, "ring schedule: segment must be >= 1 element");
  q_ = count / size_t(n_);
  m_ = count % size_t(n_);
}

RingSchedule::Step RingSchedule::step(int s) const {
  RN_CHECK(s >= 0 && s < 2 * (n_ - 1), "ring schedule: step out of range");
  if (s < n_ - 1) return Step{Phase::kReduceScatter, mod(rank_ - s), mod(rank_ - s - 1)};
  s -= n_ - 1;
  return Step{Phase::kAllGather, mod(rank_ + 1 - s), mod(rank_ - s)};
}

Range RingSchedule::chunk(int c) const {
  const size_t cc = size_t(c);
  const size_t begin = cc * q_ + std::min(cc, m_);
  return Range{begin, begin + q_ + (cc < m_ ? 1 : 0)};
}

size_t RingSchedule::segments(int c) const { return (chunk(c).size() + seg_ - 1) / seg_; }

Range RingSchedule::segment(int c, size_t k) const {
  const Range r = chunk(c);
  const size_t b = r.begin + k * seg_;
  return Range{b, std::min(r.end, b + seg_)};
}

}  // namespace rn::comm
