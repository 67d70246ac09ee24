// Tensors: a shape, a memory layout and a buffer owned by a backend.
//
// Shapes are NCHW logical dimensions whatever the layout; sizes are element
// counts (int64_t) and byte counts (size_t). A Tensor shares ownership of its
// Buffer, so views (Tensor::view) keep the storage alive. Elements are fp32
// unless the tensor says otherwise (dtype(): the GPU backend's mixed
// precision keeps activations in bf16/fp16); offsets count elements.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trainer/core/dtype.h"

namespace rn {

// Physical arrangement of a 4-D activation or 2-D matrix.
//  kNCHW    plain, W fastest (PyTorch's default, OIHW for weights)
//  kNCHW8c  channel blocks of 8  (oneDNN nChw8c,  AVX2)
//  kNCHW16c channel blocks of 16 (oneDNN nChw16c, AVX-512); C % 16 == 0
//  kNHWC    channels fastest (cuDNN's tensor-core layout; PyTorch's channels_last)
//  kNC      2-D, row-major (logits, fully connected)
enum class Layout { kNCHW, kNCHW8c, kNCHW16c, kNHWC, kNC };
const char* layout_name(Layout l);
// Channel block of a layout: 1 for plain, 8 or 16 for blocked.
int64_t layout_channel_block(Layout l);

// Up to 4 dimensions held inline, so copying a Shape (and a Tensor) never
// touches the heap: tensors are passed around freely in the step loop.
struct Shape {
  static constexpr int kMaxRank = 4;
  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : Shape(d.begin(), d.size()) {}
  explicit Shape(const std::vector<int64_t>& d) : Shape(d.data(), d.size()) {}
  int64_t rank() const { return rank_; }
  int64_t operator[](size_t i) const { return dims_[i]; }
  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + rank_; }
  int64_t numel() const;
  bool operator==(const Shape& o) const { return rank_ == o.rank_ && dims_ == o.dims_; }
  bool operator<(const Shape& o) const { return rank_ != o.rank_ ? rank_ < o.rank_ : dims_ < o.dims_; }
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  std::string str() const;  // "[8, 64, 56, 56]"

 private:
  // Copies into the inline array (kernels build shapes on every call: no
  // temporary on the heap).
  Shape(const int64_t* d, size_t rank);
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// A contiguous block of memory, allocated and freed by a backend.
class Buffer {
 public:
  Buffer(void* ptr, size_t bytes, void (*release)(void*)) : ptr_(ptr), bytes_(bytes), release_(release) {}
  ~Buffer() { if (release_) release_(ptr_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_;
  size_t bytes_;
  void (*release_)(void*);
};

class Tensor {
 public:
  Tensor() = default;
  // An fp32 tensor.
  Tensor(Shape shape, Layout layout, std::shared_ptr<Buffer> buf, size_t offset_elems = 0);
  Tensor(Shape shape, Layout layout, DType dtype, std::shared_ptr<Buffer> buf, size_t offset_elems = 0);

  const Shape& shape() const { return shape_; }
  Layout layout() const { return layout_; }
  int64_t numel() const { return shape_.numel(); }
  DType dtype() const { return dtype_; }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool empty() const { return !buf_; }
  // The first element as fp32 (only for fp32 tensors; see raw()).
  float* data() const { return static_cast<float*>(buf_->data()) + offset_; }
  // The first element, whatever the type.
  void* raw() const { return static_cast<char*>(buf_->data()) + offset_ * dtype_size(dtype_); }
  // The same storage seen with another shape/layout of equal element count
  // (and the same dtype).
  Tensor view(Shape shape, Layout layout) const;
  // The same storage seen as a tensor of another dtype with the same byte
  // count (storage shared between gradients of different types).
  Tensor view(Shape shape, Layout layout, DType dtype) const;
  // A window of `count` elements starting at element `offset` (flat views
  // into parameter and gradient buffers).
  Tensor slice(size_t offset, Shape shape, Layout layout) const;

 private:
  Shape shape_;
  Layout layout_ = Layout::kNCHW;
  DType dtype_ = DType::kF32;
  std::shared_ptr<Buffer> buf_;
  size_t offset_ = 0;
};

}  // namespace rn
