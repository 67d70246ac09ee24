// The unit of the network: explicit forward and backward.
//
// A module owns its output tensors (allocated the first time it sees an
// input shape, then reused) and remembers what backward needs from forward.
// forward returns a reference to a tensor the module owns; it stays valid
// until the next call with a different shape. Input gradients: see
// set_grad_pool.
#pragma once

#include <string>

#include "trainer/backend/backend.h"
#include "trainer/nn/grad_pool.h"
#include "trainer/nn/param_store.h"

namespace rn {

enum class Mode { kTrain, kEval };

class Module {
 public:
  virtual ~Module() = default;
  // Output shape for an input shape (no computation; used by summaries).
  virtual Shape output_shape(const Shape& in) const = 0;
  virtual const Tensor& forward(const Tensor& x, Mode mode) = 0;
  // dy: gradient w.r.t. the last forward's output. Writes parameter
  // gradients (overwriting) and returns dx, or an empty tensor when the
  // module was built without an input gradient (the network's first conv).
  virtual const Tensor& backward(const Tensor& dy) = 0;
  // Multiply-adds per image for an input shape (for --summary).
  virtual int64_t macs(const Shape& in) const { return 0; }
  virtual std::string kind() const = 0;

  // Where backward puts the input gradient it returns. Without a pool (a
  // layer used on its own): a tensor the module allocates on its first
  // backward and keeps. With one (a network that runs backward over a chain
  // of modules sets it on all of them, before the first backward): a tensor
  // taken from the pool at each backward, which the caller hands back
  // (GradPool::release) once it has consumed it. The pool outlives the
  // module; composite modules pass it on to their parts.
  virtual void set_grad_pool(GradPool* pool) { grad_pool_ = pool; }

 protected:
  // The tensor this backward writes its input gradient into, with the
  // shape, layout and dtype of `like` (see set_grad_pool); `own` is the
  // module's slot for it, also holding the pool's tensor while it is out.
  Tensor& grad_like(Backend& be, Tensor& own, const Tensor& like) {
    if (grad_pool_)
      own = grad_pool_->acquire(like.shape(), like.layout(), like.dtype());
    else if (own.empty())
      own = be.allocate(like.shape(), like.layout(), like.dtype());
    return own;
  }
  GradPool* grad_pool_ = nullptr;
};

}  // namespace rn
