#include "trainer/core/dtype.h"

namespace rn {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "fp32";
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "fp16";
  }
  return "?";
}

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "fp32")
    *out = DType::kF32;
  else if (s == "bf16")
    *out = DType::kBF16;
  else if (s == "fp16")
    *out = DType::kF16;
  else
    return false;
  return true;
}

}  // namespace rn
