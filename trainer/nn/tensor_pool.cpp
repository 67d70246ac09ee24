#include "trainer/nn/tensor_pool.h"

#include <limits>

#include "trainer/core/error.h"

namespace rn {

Tensor TensorPool::acquire(const Shape& shape, Layout layout, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  for (Slot& s : slots_) {
    if (!s.held && s.storage.bytes() == bytes) {
      s.held = true;
      return s.storage.view(shape, layout, dtype);
    }
  }
  // Only while the first pass runs (see the header).
  slots_.push_back(Slot{be_.allocate(shape, layout, dtype), true});
  return slots_.back().storage;
}

void TensorPool::release(const Tensor& t) {
  for (Slot& s : slots_) {
    if (s.held && !t.empty() && s.storage.raw() == t.raw()) {
      s.held = false;
      if (poison_) be_.fill(s.storage, std::numeric_limits<float>::quiet_NaN());
      return;
    }
  }
  RN_CHECK(false, "TensorPool::release of a " + t.shape().str() + " tensor the pool does not hold");
}

size_t TensorPool::held() const {
  size_t n = 0;
  for (const Slot& s : slots_) n += s.held;
  return n;
}

size_t TensorPool::bytes() const {
  size_t n = 0;
  for (const Slot& s : slots_) n += s.storage.bytes();
  return n;
}

}  // namespace rn
