// cuBLAS, loaded when the first GPU backend is made rather than at program
// start. Linking it would map libcublas and libcublasLt into every process,
// which adds about 217 MiB of resident memory to each CPU run (a login-node
// smoke test, resnet-infer on the CPU) for a library used only by the GPU's
// fully connected layer.
#pragma once

#include <cublas_v2.h>

#include <string>

namespace rn::cuda {

// The cuBLAS functions the backend calls (their _v2 names where the header
// maps the plain name to one).
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSetPointerMode_v2) set_pointer_mode = nullptr;
  // The C function (the header adds a C++ overload taking the legacy
  // cudaDataType compute type, which is why decltype cannot name it).
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
};

// The library of the cuBLAS major version this program was built against.
std::string cublas_library_name();  // "libcublas.so.13"

// Opens `library` (dlopen's search: LD_LIBRARY_PATH, the cache) and
// resolves every function. Throws UserError naming the library and what to
// do when it cannot be opened or lacks a function. The library stays
// loaded for the life of the process.
CublasApi load_cublas(const std::string& library);

// load_cublas(cublas_library_name()), once per process (thread-safe; a
// failure is thrown again on every call).
const CublasApi& cublas();

}  // namespace rn::cuda
