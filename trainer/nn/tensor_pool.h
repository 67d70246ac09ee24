// Storage shared between layers for tensors that live only until their
// last reader has run: the activation gradients of a backward pass, the
// activations of an eval forward pass, and those of a training forward
// pass until their backward (Module::set_grad_pool, set_output_pool). An
// eval forward holds about three at once and a backward's gradients about
// four; a training pass holds every activation at the end of its forward,
// and its backward frees them as it goes, so the gradients it makes reuse
// their storage when both come from one pool.
//
// acquire() hands out a tensor on storage no other held tensor uses;
// release() hands it back. Storage is matched by exact byte count, so the
// pool grows only while the first pass runs: every later pass makes the
// same calls in the same order and finds every size it needs free. On a
// GPU, reuse needs no synchronisation: every kernel that reads or writes
// these tensors runs on the backend's one compute stream, so a writer
// queued after a release runs after the readers queued before it.
#pragma once

#include <cstddef>
#include <vector>

#include "trainer/backend/backend.h"

namespace rn {

class TensorPool {
 public:
  // poison: release() fills the storage with NaN, so that a gradient read
  // after it was handed back shows (for tests of the release order; kernels
  // that work in place would hide the error otherwise).
  explicit TensorPool(Backend& be, bool poison = false) : be_(be), poison_(poison) {}
  TensorPool(const TensorPool&) = delete;
  TensorPool& operator=(const TensorPool&) = delete;

  // A tensor of this shape, layout and dtype, on storage held for the
  // caller until release(). Allocates only when no free storage has its
  // byte count.
  Tensor acquire(const Shape& shape, Layout layout, DType dtype);
  // Hands back the storage of a tensor acquire() returned (or a view of it
  // at the same start). Throws InternalError for anything else.
  void release(const Tensor& t);

  size_t held() const;   // tensors acquired and not yet released
  size_t bytes() const;  // storage owned, held or free
  size_t slots() const { return slots_.size(); }

 private:
  struct Slot {
    Tensor storage;
    bool held = false;
  };
  Backend& be_;
  bool poison_;
  std::vector<Slot> slots_;
};

}  // namespace rn
