#include "comm/dtype.h"

namespace rn::comm {

namespace {

// One loop per type pair; `Load`/`Store` convert to and from fp32 so that
// every arithmetic operation happens in fp32.
template <typename T, float (*Load)(T), T (*Store)(float), typename Op>
void map2(void* dst, const void* src, size_t n, Op op) {
  T* d = static_cast<T*>(dst);
  const T* s = static_cast<const T*>(src);
  for (size_t i = 0; i < n; ++i) d[i] = Store(op(Load(d[i]), s ? Load(s[i]) : 0.f));
}

float f32_load(float v) { return v; }
float f32_store(float v) { return v; }

template <typename Op>
void dispatch(DType t, void* dst, const void* src, size_t n, Op op) {
  switch (t) {
    case DType::kF32: return map2<float, f32_load, f32_store>(dst, src, n, op);
    case DType::kBF16: return map2<uint16_t, bf16_to_float, float_to_bf16>(dst, src, n, op);
    case DType::kF16: return map2<uint16_t, fp16_to_float, float_to_fp16>(dst, src, n, op);
  }
}

}  // namespace

void reduce_add(DType t, void* dst, const void* src, size_t n) {
  dispatch(t, dst, src, n, [](float a, float b) { return a + b; });
}

void divide(DType t, void* buf, size_t n, float divisor) {
  dispatch(t, buf, nullptr, n, [divisor](float a, float) { return a / divisor; });
}

void pack(DType t, const float* src, void* dst, size_t n) {
  if (t == DType::kF32) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  auto* d = static_cast<uint16_t*>(dst);
  if (t == DType::kBF16)
    for (size_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
  else
    for (size_t i = 0; i < n; ++i) d[i] = float_to_fp16(src[i]);
}

void unpack(DType t, const void* src, float* dst, size_t n) {
  if (t == DType::kF32) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  const auto* s = static_cast<const uint16_t*>(src);
  if (t == DType::kBF16)
    for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
  else
    for (size_t i = 0; i < n; ++i) dst[i] = fp16_to_float(s[i]);
}

}  // namespace rn::comm
