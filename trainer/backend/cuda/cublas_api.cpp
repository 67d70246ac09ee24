#include "trainer/backend/cuda/cublas_api.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <exception>
#include <mutex>

#include "trainer/core/error.h"

namespace rn::cuda {

std::string cublas_library_name() { return fmt::format("libcublas.so.{}", CUBLAS_VER_MAJOR); }

CublasApi load_cublas(const std::string& library) {
  void* h = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = dlerror();
    throw UserError(
        fmt::format("--device cuda needs cuBLAS {} ({}), which cannot be loaded: {}; install the CUDA toolkit's cuBLAS "
                    "or add its lib directory to LD_LIBRARY_PATH",
                    CUBLAS_VER_MAJOR, library, why ? why : "unknown error"));
  }
  CublasApi api;
  auto resolve = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
    if (!fn)
      throw UserError(fmt::format("{} has no function {}: it is not cuBLAS {}; check LD_LIBRARY_PATH", library, name,
                                  CUBLAS_VER_MAJOR));
  };
  resolve(api.create, "cublasCreate_v2");
  resolve(api.destroy, "cublasDestroy_v2");
  resolve(api.set_stream, "cublasSetStream_v2");
  resolve(api.set_math_mode, "cublasSetMathMode");
  resolve(api.set_pointer_mode, "cublasSetPointerMode_v2");
  resolve(api.gemm_ex, "cublasGemmEx");
  return api;
}

const CublasApi& cublas() {
  static std::once_flag once;
  static CublasApi api;
  static std::exception_ptr failure;
  std::call_once(once, [] {
    try {
      api = load_cublas(cublas_library_name());
    } catch (...) {
      failure = std::current_exception();
    }
  });
  if (failure) std::rethrow_exception(failure);
  return api;
}

}  // namespace rn::cuda
