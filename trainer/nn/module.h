// The unit of the network: explicit forward and backward.
//
// A module owns its output tensors (allocated the first time it sees an
// input shape, then reused) and remembers what backward needs from forward.
// forward returns a reference to a tensor the module owns; it stays valid
// until the next call with a different shape. Outputs from a pool: see
// set_output_pool; input gradients: see set_grad_pool.
#pragma once

#include <string>

#include "trainer/backend/backend.h"
#include "trainer/nn/param_store.h"
#include "trainer/nn/tensor_pool.h"

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
  // (TensorPool::release) once it has consumed it. The pool outlives the
  // module; composite modules pass it on to their parts.
  virtual void set_grad_pool(TensorPool* pool) { grad_pool_ = pool; }

  // Where forward puts its output. Without a pool: a tensor the module
  // allocates the first time it sees an input shape and keeps. With one (a
  // network sets it on all of its modules): a tensor taken from the pool at
  // each forward, which the caller hands back once nothing reads it any
  // more: after the next module's forward in eval mode, after the module's
  // own backward in training (ResNet::set_output_pool). Composite modules
  // pass it on to their parts and hand back their inner tensors.
  virtual void set_output_pool(TensorPool* pool) { output_pool_ = pool; }

 protected:
  // The tensor this backward writes its input gradient into, with the
  // shape, layout and dtype of `like` (see set_grad_pool); `own` is the
  // module's slot for it, also holding the pool's tensor while it is out.
  Tensor& grad_like(Backend& be, Tensor& own, const Tensor& like) {
    return take(grad_pool_, be, own, like.shape(), like.layout(), like.dtype());
  }
  // The tensor this forward writes its output into (see set_output_pool).
  Tensor& output_tensor(Backend& be, Tensor& own, const Shape& shape, Layout layout, DType dtype) {
    return take(output_pool_, be, own, shape, layout, dtype);
  }
  TensorPool* grad_pool_ = nullptr;
  TensorPool* output_pool_ = nullptr;

 private:
  static Tensor& take(TensorPool* pool, Backend& be, Tensor& own, const Shape& shape, Layout layout, DType dtype) {
    if (pool)
      own = pool->acquire(shape, layout, dtype);
    else if (own.empty())
      own = be.allocate(shape, layout, dtype);
    return own;
  }
};

}  // namespace rn
