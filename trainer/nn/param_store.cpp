#include "trainer/nn/param_store.h"

#include "trainer/core/error.h"

namespace rn {

// `end` rounded up to the next aligned slot start.
static int64_t aligned(int64_t end) {
  constexpr int64_t a = ParamStore::kAlignElements;
  return (end + a - 1) / a * a;
}

Param* ParamStore::declare_param(std::string name, Shape shape, bool is_bn_or_bias) {
  RN_CHECK(!allocated(), "parameter declared after allocation: " + name);
  Param p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.decay = !is_bn_or_bias;
  p.offset = static_cast<size_t>(param_elems_);
  param_elems_ = aligned(param_elems_ + p.shape.numel());
  param_count_ += p.shape.numel();
  params_.push_back(std::move(p));
  return &params_.back();
}

StateBuffer* ParamStore::declare_buffer(std::string name, Shape shape) {
  RN_CHECK(!allocated(), "buffer declared after allocation: " + name);
  StateBuffer b;
  b.name = std::move(name);
  b.shape = std::move(shape);
  b.offset = static_cast<size_t>(buffer_elems_);
  buffer_elems_ = aligned(buffer_elems_ + b.shape.numel());
  buffers_.push_back(std::move(b));
  return &buffers_.back();
}

static Layout flat_layout(const Shape& s) { return s.rank() == 4 ? Layout::kNCHW : Layout::kNC; }

void ParamStore::allocate(Backend& backend) {
  RN_CHECK(!allocated(), "ParamStore::allocate called twice");
  values_ = backend.allocate(Shape{std::max<int64_t>(param_elems_, 1)}, Layout::kNC);
  grads_ = backend.allocate(Shape{std::max<int64_t>(param_elems_, 1)}, Layout::kNC);
  buffer_values_ = backend.allocate(Shape{std::max<int64_t>(buffer_elems_, 1)}, Layout::kNC);
  backend.fill(values_, 0.f);
  backend.fill(grads_, 0.f);
  backend.fill(buffer_values_, 0.f);
  for (auto& p : params_) {
    p.value = values_.slice(p.offset, p.shape, flat_layout(p.shape));
    p.grad = grads_.slice(p.offset, p.shape, flat_layout(p.shape));
  }
  for (auto& b : buffers_) b.value = buffer_values_.slice(b.offset, b.shape, flat_layout(b.shape));
}

}  // namespace rn
