// A Transport over device buffers, built on a host Transport (the
// Communicator) and a StagingCopier that moves bytes between device and host.
//
// Staging::kPinnedHost (MPI that cannot read GPU memory): every message goes
// through a pinned host slot. isend queues the copy device -> slot, waits for
// it and sends the slot; irecv receives into a slot, and wait() queues the
// copy slot -> device, which later work on the same stream sees without a
// host wait. forward() of a segment whose receive is in such a slot sends
// that slot again (no copy back to the host, no wait for the stream); the
// slot is free once the send is done and its copy to the device has run.
// Staging::kNone (CUDA-aware MPI): the inner transport reads and
// writes device memory itself; the stream is drained before anything is
// posted, so MPI never sends a segment whose reduction is still queued, nor
// overwrites memory that a queued kernel still reads.
//
// Ordering contract: the copier's copies and the work of the ReduceOps used
// with this transport run in one order (one CUDA stream), and sync() waits
// for all of it. Then the ring executor needs no ordering of its own.
//
// Slots: one per message in flight, from a pool sized by reserve() (see
// ring_messages_in_flight); a receive slot whose copy to the device is still
// queued goes back to the pool at the next sync(). If more slots are needed
// than reserved the pool grows (first use of a size), it never shrinks.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "comm/allreduce.h"
#include "comm/reduce_ops.h"
#include "comm/transport.h"

namespace rn::comm {

class StagingCopier {
 public:
  virtual ~StagingCopier() = default;
  // `bytes` of page-locked host memory for staging.
  virtual OwnedMemory alloc_host(size_t bytes) = 0;
  // Queue a copy (asynchronous; in order with the other copies and with the
  // ReduceOps' work on the same stream).
  virtual void d2h(void* host, const void* device, size_t bytes) = 0;
  virtual void h2d(void* device, const void* host, size_t bytes) = 0;
  // Returns once everything queued so far has completed.
  virtual void sync() = 0;
  // `host` (a slot) goes back to the pool: nothing queued reads or writes it
  // any more. Test copiers poison it here to catch a use after release.
  virtual void released(void* host, size_t bytes) {}
};

enum class Staging { kPinnedHost, kNone };

class StagedTransport final : public Transport {
 public:
  // inner: host transport (messages go to inner's ranks); both outlive this.
  StagedTransport(Transport& inner, StagingCopier& copier, Staging staging);

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  Handle isend(const void* device_buf, size_t bytes, int peer) override;
  Handle irecv(void* device_buf, size_t bytes, int peer) override;
  Handle forward(const void* device_buf, size_t bytes, int peer) override;
  void wait(Handle h, const WaitInfo& info) override;

  // kPinnedHost: at least `slots` slots of at least slot_bytes each. Call
  // with no message in flight; a no-op when the pool is already that large.
  void reserve(size_t slots, size_t slot_bytes);
  // Slots allocated so far (tests check the pool stops growing).
  size_t slots() const { return slots_.size(); }

 private:
  struct Slot {
    OwnedMemory mem;
    size_t bytes = 0;
    // While pending (its copy to the device queued): the device bytes it
    // holds, which forward() may send from the slot.
    const void* mirrors = nullptr;
    size_t mirrored_bytes = 0;
  };
  struct Op {
    Handle inner = -1;
    int slot = -1;           // -1: no staging
    void* device = nullptr;  // receives: where wait() copies the slot
    size_t bytes = 0;
    bool recv = false;
    bool forwarded = false;  // a send from a pending receive slot
  };

  char* slot_ptr(int s) { return static_cast<char*>(slots_[size_t(s)].mem.get()); }
  int take_slot(size_t bytes);
  void release(int slot);
  // copier.sync(), then the receive slots whose copies were queued are free.
  void drain();
  Handle add_op(const Op& op);

  Transport& inner_;
  StagingCopier& copier_;
  Staging staging_;
  size_t slot_bytes_ = 0;
  std::vector<Slot> slots_;
  std::vector<int> free_slots_, pending_slots_;
  std::vector<Op> ops_;
  std::vector<Handle> free_ops_;
};

// The ring all-reduce over a StagedTransport on `inner`: run() takes device
// buffers; reserve() sizes the ring's scratch (from ops) and the slot pool.
// inner, copier and ops must outlive the result and share one stream.
std::unique_ptr<Allreducer> make_staged_ring_allreducer(Transport& inner, StagingCopier& copier, Staging staging,
                                                        ReduceOps& ops, size_t segment_bytes);

}  // namespace rn::comm
