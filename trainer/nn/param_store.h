// Parameters and buffers of a model, in two flat backend buffers.
//
// Layers declare their tensors (name, shape) while the model is built; then
// `allocate` places them in declaration order in one flat buffer, so the
// optimizer and the gradient all-reduce work on a handful of large ranges
// instead of hundreds of small ones. Names follow torchvision
// (`layer1.0.conv1.weight`).
//
// Every tensor starts at a multiple of kAlignElements (256 bytes in fp32):
// views go straight to cuDNN, cuBLAS and vectorised kernels, which want
// aligned pointers, and a 1-element BN counter would otherwise leave every
// later running statistic 4-byte aligned. The gaps are zero and stay zero
// (no layer writes them, so their gradient, momentum and decay are 0).
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "trainer/backend/backend.h"

namespace rn {

struct Param {
  std::string name;
  Shape shape;       // PyTorch shape (OIHW for convolutions, (out,in) for fc)
  bool decay = true; // false for BN and bias when weight decay excludes them
  Tensor value;      // view into ParamStore's flat value buffer
  Tensor grad;       // view into the flat gradient buffer (same offsets)
  size_t offset = 0;  // element offset into the flat buffers (a multiple of kAlignElements)
};

// Non-trained state saved with the model (BN running statistics).
struct StateBuffer {
  std::string name;
  Shape shape;
  Tensor value;
  size_t offset = 0;  // a multiple of ParamStore::kAlignElements
};

class ParamStore {
 public:
  static constexpr int64_t kAlignElements = 64;

  // Declared pointers stay valid for the store's lifetime.
  Param* declare_param(std::string name, Shape shape, bool is_bn_or_bias);
  StateBuffer* declare_buffer(std::string name, Shape shape);
  // Allocates the flat buffers and binds every view. Call once.
  void allocate(Backend& backend);

  std::deque<Param>& params() { return params_; }
  const std::deque<Param>& params() const { return params_; }
  std::deque<StateBuffer>& buffers() { return buffers_; }
  const std::deque<StateBuffer>& buffers() const { return buffers_; }
  // Trained parameters, as torchvision counts them (no alignment gaps).
  int64_t param_count() const { return param_count_; }
  // Elements of flat_values / flat_grads (parameters and gaps): what the
  // all-reduce, the optimizer and the weight broadcast cover.
  int64_t flat_size() const { return param_elems_; }
  Tensor& flat_values() { return values_; }
  Tensor& flat_grads() { return grads_; }
  // Every StateBuffer in declaration order (flat_buffer_size elements, gaps
  // included).
  Tensor& flat_buffers() { return buffer_values_; }
  int64_t flat_buffer_size() const { return buffer_elems_; }
  bool allocated() const { return !values_.empty(); }

 private:
  std::deque<Param> params_;
  std::deque<StateBuffer> buffers_;
  int64_t param_elems_ = 0;  // end of the last parameter's aligned slot
  int64_t param_count_ = 0;
  int64_t buffer_elems_ = 0;  // end of the last buffer's aligned slot
  Tensor values_, grads_, buffer_values_;
};

}  // namespace rn
