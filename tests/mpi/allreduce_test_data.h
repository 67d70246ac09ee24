// Test data of the all-reduce suites (tests/mpi, tests/gpu_mpi): inputs
// whose every partial sum is exact in the type (as nccl-tests do), so the
// result is known whatever order an algorithm adds in, and reading results
// of any wire type back as floats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "comm/dtype.h"

namespace rn::comm::testdata {

// |x| <= 6 for the 16-bit types (N <= 8 ranks: sums <= 48, exact in bf16),
// up to 2047 in magnitude for fp32.
inline float exact_value(DType t, size_t i, int rank) {
  if (t != DType::kF32) return float(int((i * 31 + size_t(rank) * 17) % 13) - 6);
  return float(int((i * 2654435761u + size_t(rank) * 40503u) % 4095) - 2047);
}

// Element i of a packed buffer of type t, as a float.
inline float load(DType t, const void* buf, size_t i) {
  const auto* bytes = static_cast<const char*>(buf);
  if (t == DType::kF32) {
    float f;
    std::memcpy(&f, bytes + i * 4, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, bytes + i * 2, 2);
  return t == DType::kBF16 ? bf16_to_float(h) : fp16_to_float(h);
}

// v rounded to nearest even in t (identity for fp32).
inline float round_to(DType t, float v) {
  if (t == DType::kBF16) return bf16_to_float(float_to_bf16(v));
  if (t == DType::kF16) return fp16_to_float(float_to_fp16(v));
  return v;
}

}  // namespace rn::comm::testdata
