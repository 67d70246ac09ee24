#include "comm/reduce_ops.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "trainer/core/error.h"

namespace rn::comm {
namespace {

class HostReduceOps final : public ReduceOps {
 public:
  void reduce_add(DType t, void* dst, const void* src, size_t n) override { comm::reduce_add(t, dst, src, n); }
  void divide(DType t, void* buf, size_t n, float divisor) override { comm::divide(t, buf, n, divisor); }
  void convert(DType to, void* dst, DType from, const void* src, size_t n) override {
    if (from == DType::kF32) return pack(to, static_cast<const float*>(src), dst, n);
    if (to == DType::kF32) return unpack(from, src, static_cast<float*>(dst), n);
    RN_CHECK(to == from, std::string("no conversion from ") + dtype_name(from) + " to " + dtype_name(to));
    std::memcpy(dst, src, n * dtype_size(to));
  }
  void finish() override {}
  OwnedMemory allocate(size_t bytes) override {
    void* p = std::malloc(bytes == 0 ? 1 : bytes);
    if (p == nullptr) throw std::bad_alloc();
    return OwnedMemory(p, MemoryDeleter{[](void* q) { std::free(q); }});
  }
};

}  // namespace

ReduceOps& host_reduce_ops() {
  static HostReduceOps ops;
  return ops;
}

}  // namespace rn::comm
