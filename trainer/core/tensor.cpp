#include "trainer/core/tensor.h"

#include <algorithm>

#include "trainer/core/error.h"

namespace rn {

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::kNCHW:
      return "nchw";
    case Layout::kNCHW8c:
      return "nChw8c";
    case Layout::kNCHW16c:
      return "nChw16c";
    case Layout::kNHWC:
      return "nhwc";
    case Layout::kNC:
      return "nc";
  }
  return "?";
}

int64_t layout_channel_block(Layout l) {
  switch (l) {
    case Layout::kNCHW8c: return 8;
    case Layout::kNCHW16c: return 16;
    default: return 1;
  }
}

Shape::Shape(const int64_t* d, size_t rank) {
  RN_CHECK(rank <= kMaxRank, "tensors have at most 4 dimensions, got " + std::to_string(rank));
  std::copy(d, d + rank, dims_.begin());
  rank_ = static_cast<int>(rank);
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (auto d : *this) n *= d;
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
  return s + "]";
}

Tensor::Tensor(Shape shape, Layout layout, std::shared_ptr<Buffer> buf, size_t offset_elems)
    : Tensor(std::move(shape), layout, DType::kF32, std::move(buf), offset_elems) {}

Tensor::Tensor(Shape shape, Layout layout, DType dtype, std::shared_ptr<Buffer> buf, size_t offset_elems)
    : shape_(std::move(shape)), layout_(layout), dtype_(dtype), buf_(std::move(buf)), offset_(offset_elems) {
  RN_CHECK(buf_ && (offset_ + static_cast<size_t>(shape_.numel())) * dtype_size(dtype_) <= buf_->bytes(),
           "tensor " + shape_.str() + " does not fit its buffer");
  RN_CHECK(layout_channel_block(layout_) == 1 || (shape_.rank() == 4 && shape_[1] % layout_channel_block(layout_) == 0),
           std::string("layout ") + layout_name(layout_) + " needs channels divisible by its block, got " + shape_.str());
}

Tensor Tensor::view(Shape shape, Layout layout) const {
  RN_CHECK(shape.numel() == numel(), "view " + shape.str() + " of " + shape_.str());
  return Tensor(std::move(shape), layout, dtype_, buf_, offset_);
}

Tensor Tensor::view(Shape shape, Layout layout, DType dtype) const {
  RN_CHECK(static_cast<size_t>(shape.numel()) * dtype_size(dtype) == bytes(),
           "view " + shape.str() + " " + dtype_name(dtype) + " of " + shape_.str() + " " + dtype_name(dtype_));
  const size_t offset_bytes = offset_ * dtype_size(dtype_);
  RN_CHECK(offset_bytes % dtype_size(dtype) == 0,
           "view as " + std::string(dtype_name(dtype)) + " at a misaligned offset");
  return Tensor(std::move(shape), layout, dtype, buf_, offset_bytes / dtype_size(dtype));
}

Tensor Tensor::slice(size_t offset, Shape shape, Layout layout) const {
  RN_CHECK(offset + static_cast<size_t>(shape.numel()) <= static_cast<size_t>(numel()), "slice out of range");
  return Tensor(std::move(shape), layout, dtype_, buf_, offset_ + offset);
}

}  // namespace rn
