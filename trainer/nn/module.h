// The unit of the network: explicit forward and backward.
//
// A module owns its output and input-gradient tensors (allocated the first
// time it sees an input shape, then reused), and remembers what backward
// needs from forward. forward/backward return references to tensors the
// module owns; they stay valid until the next call with a different shape.
#pragma once

#include <string>

#include "trainer/backend/backend.h"
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
};

}  // namespace rn
