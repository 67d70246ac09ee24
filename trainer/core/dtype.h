// Element types of tensors and of gradients on the wire.
//
// fp32 is the reference type: parameters, gradients, BN statistics and the
// optimizer state are always fp32. bf16/fp16 hold activations in the GPU
// backend's mixed precision and, optionally, gradients on the wire.
#pragma once

#include <cstddef>
#include <string>

namespace rn {

enum class DType { kF32, kBF16, kF16 };

inline size_t dtype_size(DType t) { return t == DType::kF32 ? 4 : 2; }
const char* dtype_name(DType t);  // "fp32" | "bf16" | "fp16"
// "fp32" | "bf16" | "fp16"; returns false for anything else.
bool parse_dtype(const std::string& s, DType* out);

}  // namespace rn
