#include "comm/staged_transport.h"

#include <algorithm>

#include "trainer/core/error.h"

namespace rn::comm {

StagedTransport::StagedTransport(Transport& inner, StagingCopier& copier, Staging staging)
    : inner_(inner), copier_(copier), staging_(staging) {}

void StagedTransport::reserve(size_t slots, size_t slot_bytes) {
  if (staging_ == Staging::kNone) return;
  if (slots_.size() >= slots && slot_bytes <= slot_bytes_) return;
  RN_CHECK(free_ops_.size() == ops_.size(), "staged transport: reserve() with messages in flight");
  drain();
  if (slot_bytes > slot_bytes_) {  // larger messages: replace the pool
    free_slots_.clear();
    slots_.clear();
    slot_bytes_ = slot_bytes;
  }
  while (slots_.size() < slots) {
    slots_.push_back(Slot{copier_.alloc_host(slot_bytes_), slot_bytes_});
    free_slots_.push_back(int(slots_.size() - 1));
  }
}

int StagedTransport::take_slot(size_t bytes) {
  for (;;) {
    for (size_t i = free_slots_.size(); i-- > 0;) {
      const int s = free_slots_[i];
      if (slots_[size_t(s)].bytes >= bytes) {
        free_slots_.erase(free_slots_.begin() + std::ptrdiff_t(i));
        return s;
      }
    }
    if (pending_slots_.empty()) break;
    drain();  // receive slots whose device copies are queued
  }
  // More in flight than reserved (or a larger message): grow.
  const size_t cap = std::max(bytes, slot_bytes_);
  slots_.push_back(Slot{copier_.alloc_host(cap), cap});
  return int(slots_.size() - 1);
}

void StagedTransport::release(int slot) {
  copier_.released(slot_ptr(slot), slots_[size_t(slot)].bytes);
  free_slots_.push_back(slot);
}

void StagedTransport::drain() {
  copier_.sync();
  for (int s : pending_slots_) {
    slots_[size_t(s)].mirrors = nullptr;
    release(s);
  }
  pending_slots_.clear();
}

Transport::Handle StagedTransport::add_op(const Op& op) {
  if (!free_ops_.empty()) {
    const Handle h = free_ops_.back();
    free_ops_.pop_back();
    ops_[size_t(h)] = op;
    return h;
  }
  ops_.push_back(op);  // grows only until the largest call was seen
  return Handle(ops_.size() - 1);
}

Transport::Handle StagedTransport::isend(const void* device_buf, size_t bytes, int peer) {
  if (staging_ == Staging::kNone) {
    copier_.sync();  // the reductions that produced these bytes have run
    return add_op(Op{inner_.isend(device_buf, bytes, peer), -1, nullptr, bytes, false});
  }
  const int s = take_slot(bytes);
  if (bytes > 0) copier_.d2h(slot_ptr(s), device_buf, bytes);
  drain();  // the copy (and the reductions queued before it) has landed
  return add_op(Op{inner_.isend(slot_ptr(s), bytes, peer), s, nullptr, bytes, false});
}

Transport::Handle StagedTransport::irecv(void* device_buf, size_t bytes, int peer) {
  if (staging_ == Staging::kNone) {
    copier_.sync();  // no queued kernel still reads or writes what MPI will overwrite
    return add_op(Op{inner_.irecv(device_buf, bytes, peer), -1, nullptr, bytes, true});
  }
  const int s = take_slot(bytes);
  return add_op(Op{inner_.irecv(slot_ptr(s), bytes, peer), s, device_buf, bytes, true});
}

Transport::Handle StagedTransport::forward(const void* device_buf, size_t bytes, int peer) {
  for (size_t i = 0; i < pending_slots_.size(); ++i) {
    const int s = pending_slots_[i];
    Slot& slot = slots_[size_t(s)];
    if (slot.mirrors != device_buf || slot.mirrored_bytes != bytes) continue;
    // The slot holds exactly these bytes: send it as it is. It leaves the
    // pending list (no drain may free it while MPI reads it); wait() puts
    // it back, since its copy to the device may still be queued.
    slot.mirrors = nullptr;
    pending_slots_.erase(pending_slots_.begin() + std::ptrdiff_t(i));
    Op op{inner_.isend(slot_ptr(s), bytes, peer), s, nullptr, bytes, false};
    op.forwarded = true;
    return add_op(op);
  }
  return isend(device_buf, bytes, peer);  // not staged here (or already drained)
}

void StagedTransport::wait(Handle h, const WaitInfo& info) {
  const Op op = ops_[size_t(h)];
  free_ops_.push_back(h);
  inner_.wait(op.inner, info);
  if (op.slot < 0) return;
  if (op.forwarded) {
    pending_slots_.push_back(op.slot);  // free once its copy to the device has run
  } else if (!op.recv) {
    release(op.slot);  // MPI has finished reading it
  } else {
    if (op.bytes > 0) copier_.h2d(op.device, slot_ptr(op.slot), op.bytes);
    Slot& slot = slots_[size_t(op.slot)];
    slot.mirrors = op.device;
    slot.mirrored_bytes = op.bytes;
    pending_slots_.push_back(op.slot);  // free once that copy has run
  }
}

namespace {

class StagedRingAllreducer final : public Allreducer {
 public:
  StagedRingAllreducer(Transport& inner, StagingCopier& copier, Staging staging, ReduceOps& ops, size_t segment_bytes)
      : transport_(inner, copier, staging),
        ring_(make_ring_allreducer(transport_, segment_bytes, ops)),
        segment_bytes_(segment_bytes) {}

  void reserve(size_t max_elems, DType t) override {
    ring_->reserve(max_elems, t);
    const size_t es = dtype_size(t);
    const size_t seg = std::max<size_t>(1, segment_bytes_ / es);
    transport_.reserve(ring_messages_in_flight(transport_.size(), max_elems, seg), seg * es);
  }

  void run(void* data, size_t count, DType t, ReduceOp op, WaitInfo info) override {
    if (transport_.size() == 1 || count == 0) return;
    reserve(count, t);  // no-op once reserved
    ring_->run(data, count, t, op, info);
  }

  ReduceOps& ops() override { return ring_->ops(); }

 private:
  StagedTransport transport_;
  std::unique_ptr<Allreducer> ring_;
  size_t segment_bytes_;
};

}  // namespace

std::unique_ptr<Allreducer> make_staged_ring_allreducer(Transport& inner, StagingCopier& copier, Staging staging,
                                                        ReduceOps& ops, size_t segment_bytes) {
  return std::make_unique<StagedRingAllreducer>(inner, copier, staging, ops, segment_bytes);
}

}  // namespace rn::comm
