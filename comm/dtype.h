// Element types the gradient all-reduce can put on the wire.
//
// bf16 and fp16 halve the bytes sent; every reduction still adds in fp32
// (convert, add, round once to nearest-even), so a sum of N values rounds N-1
// times, exactly like an fp32 ring with a narrower store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "trainer/core/dtype.h"

namespace rn::comm {

// The element types are the tensors' (trainer/core/dtype.h).
using rn::DType;
using rn::dtype_name;
using rn::dtype_size;
using rn::parse_dtype;

// bfloat16: the top 16 bits of an fp32, rounded to nearest-even (NaN kept
// quiet). Written out because GCC 12's __bf16 has no conversions.
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_float(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// IEEE binary16 through the compiler's _Float16 (correctly rounded).
inline uint16_t float_to_fp16(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}
inline float fp16_to_float(uint16_t u) {
  _Float16 h;
  std::memcpy(&h, &u, 2);
  return static_cast<float>(h);
}

// dst[i] = round(float(dst[i]) + float(src[i])) for n elements of type t.
void reduce_add(DType t, void* dst, const void* src, size_t n);
// buf[i] = round(float(buf[i]) / divisor): the average after a sum.
void divide(DType t, void* buf, size_t n, float divisor);
// Conversions between an fp32 array and an array of type t (n elements).
void pack(DType t, const float* src, void* dst, size_t n);
void unpack(DType t, const void* src, float* dst, size_t n);

}  // namespace rn::comm
