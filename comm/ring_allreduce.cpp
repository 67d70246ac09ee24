// Executes RingSchedule over a Transport, pipelined per segment (see
// ring_schedule.h for the chunk indices).
//
// Reduce-scatter: receives for step s land in one of two scratch chunks; the
// receives of step s+1 are posted before step s is reduced, and each reduced
// segment is sent on at once (it is what step s+1 sends). All-gather
// receives go straight into the buffer (their chunks are distinct), so they
// are all posted up front and each arriving segment is forwarded
// (Transport::forward: a staging transport resends its host copy).
//
// Every element operation and the scratch memory go through a ReduceOps, so
// the same executor runs on host memory or (device ReduceOps, a transport
// that orders its copies with them) on GPU memory.
#include <algorithm>
#include <vector>

#include "comm/allreduce.h"
#include "comm/ring_schedule.h"
#include "trainer/core/error.h"

namespace rn::comm {
namespace {

class RingAllreducer final : public Allreducer {
 public:
  RingAllreducer(Transport& t, size_t segment_bytes, ReduceOps& ops)
      : t_(t), ops_(ops), segment_bytes_(segment_bytes) {}

  ReduceOps& ops() override { return ops_; }

  void reserve(size_t max_elems, DType t) override {
    const size_t n = size_t(t_.size());
    const size_t chunk = (max_elems + n - 1) / n;
    const size_t bytes = chunk * dtype_size(t);
    if (scratch_bytes_ < bytes) {
      scratch_[0] = ops_.allocate(bytes);
      scratch_[1] = ops_.allocate(bytes);
      scratch_bytes_ = bytes;
    }
    const size_t seg = std::max<size_t>(1, segment_bytes_ / dtype_size(t));
    const size_t segs = (chunk + seg - 1) / seg + 1;
    for (auto& h : recv_) h.reserve(segs);
    sends_.reserve(segs * n);
    ag_recv_.reserve(segs * n);
  }

  void run(void* data, size_t count, DType t, ReduceOp op, WaitInfo info) override {
    const int n = t_.size();
    if (n == 1 || count == 0) return;  // a sum (or mean) over one rank is the input
    reserve(count, t);                 // no-op once reserved
    const size_t es = dtype_size(t);
    const size_t seg = std::max<size_t>(1, segment_bytes_ / es);
    const RingSchedule s(n, t_.rank(), count, seg);
    char* base = static_cast<char*>(data);
    auto at = [&](size_t elem) { return base + elem * es; };
    info.steps = 2 * (n - 1);

    // Reduce-scatter.
    auto post_recvs = [&](int step) {
      auto& slot = recv_[step % 2];
      slot.clear();
      const int c = s.step(step).recv_chunk;
      const size_t c0 = s.chunk(c).begin;
      for (size_t k = 0; k < s.segments(c); ++k) {
        const Range r = s.segment(c, k);
        slot.push_back(t_.irecv(scratch(step % 2) + (r.begin - c0) * es, r.size() * es, s.left()));
      }
    };
    auto send_segment = [&](int c, size_t k) {
      const Range r = s.segment(c, k);
      sends_.push_back(t_.isend(at(r.begin), r.size() * es, s.right()));
    };
    // An all-gather segment passed on unchanged, as it arrived.
    auto forward_segment = [&](int c, size_t k) {
      const Range r = s.segment(c, k);
      sends_.push_back(t_.forward(at(r.begin), r.size() * es, s.right()));
    };
    sends_.clear();
    post_recvs(0);
    for (size_t k = 0; k < s.segments(s.step(0).send_chunk); ++k) send_segment(s.step(0).send_chunk, k);
    for (int step = 0; step < n - 1; ++step) {
      if (step + 1 < n - 1) post_recvs(step + 1);
      const int c = s.step(step).recv_chunk;
      const size_t c0 = s.chunk(c).begin;
      for (size_t k = 0; k < s.segments(c); ++k) {
        info.step = step;
        info.peer = s.left();
        info.recv = true;
        t_.wait(recv_[step % 2][k], info);
        const Range r = s.segment(c, k);
        ops_.reduce_add(t, at(r.begin), scratch(step % 2) + (r.begin - c0) * es, r.size());
        if (step + 1 < n - 1) send_segment(c, k);  // step+1 sends this chunk
      }
    }
    wait_sends(info, s.right());

    // The owned chunk is final: average it once, before anyone copies it.
    if (op == ReduceOp::kAverage) {
      const Range own = s.chunk(s.owned_chunk());
      ops_.divide(t, at(own.begin), own.size(), float(n));
    }

    // All-gather.
    ag_recv_.clear();
    for (int step = n - 1; step < 2 * (n - 1); ++step) {
      const int c = s.step(step).recv_chunk;
      for (size_t k = 0; k < s.segments(c); ++k) {
        const Range r = s.segment(c, k);
        ag_recv_.push_back(t_.irecv(at(r.begin), r.size() * es, s.left()));
      }
    }
    const int first_ag = n - 1;
    for (size_t k = 0; k < s.segments(s.step(first_ag).send_chunk); ++k) send_segment(s.step(first_ag).send_chunk, k);
    size_t next = 0;
    for (int step = first_ag; step < 2 * (n - 1); ++step) {
      const int c = s.step(step).recv_chunk;
      for (size_t k = 0; k < s.segments(c); ++k) {
        info.step = step;
        info.peer = s.left();
        info.recv = true;
        t_.wait(ag_recv_[next++], info);
        if (step + 1 < 2 * (n - 1)) forward_segment(c, k);
      }
    }
    wait_sends(info, s.right());
    ops_.finish();  // device ops: the last copies and reductions have landed
  }

 private:
  char* scratch(int i) { return static_cast<char*>(scratch_[i].get()); }

  void wait_sends(WaitInfo& info, int peer) {
    info.peer = peer;
    info.recv = false;
    for (auto h : sends_) t_.wait(h, info);
    sends_.clear();
  }

  Transport& t_;
  ReduceOps& ops_;
  size_t segment_bytes_;
  OwnedMemory scratch_[2];  // receive buffers of alternate reduce-scatter steps
  size_t scratch_bytes_ = 0;
  std::vector<Transport::Handle> recv_[2], sends_, ag_recv_;
};

}  // namespace

std::unique_ptr<Allreducer> make_ring_allreducer(Transport& transport, size_t segment_bytes, ReduceOps& ops) {
  RN_CHECK(segment_bytes >= 2, "ring all-reduce: segment must hold at least one element");
  return std::make_unique<RingAllreducer>(transport, segment_bytes, ops);
}

size_t ring_messages_in_flight(int world, size_t max_elems, size_t segment_elems) {
  if (world <= 1) return 0;
  const size_t n = size_t(world);
  const size_t seg = std::max<size_t>(1, segment_elems);
  const size_t per_chunk = ((max_elems + n - 1) / n + seg - 1) / seg;  // segments of the largest chunk
  // Reduce-scatter: every send until the phase ends, receives of two steps.
  // All-gather: every receive posted up front, every send until the end.
  return std::max((n + 1) * per_chunk, 2 * (n - 1) * per_chunk);
}

}  // namespace rn::comm
