// Backend selection (train.device). The CUDA backend is compiled in only
// where CMake found nvcc and cuDNN (RN_HAVE_CUDA).
#include "trainer/backend/backend.h"
#include "trainer/core/error.h"

#ifdef RN_HAVE_CUDA
#include "trainer/backend/cuda/make_cuda_backend.h"
#endif

namespace rn {

bool cuda_backend_compiled() {
#ifdef RN_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(const BackendOptions& o) {
  if (o.device == "cpu") return make_cpu_backend(o.threads);
  if (o.device != "cuda") throw UserError("train.device = '" + o.device + "' is not a device; allowed: cpu, cuda.");
#ifdef RN_HAVE_CUDA
  return make_cuda_backend(o);
#else
  throw UserError(
      "--device cuda (train.device), but this program was built without the CUDA backend (-DRESNET_WITH_CUDA=OFF, or "
      "CMake found no nvcc, cuDNN 9 and NCCL; see the README's build section). Rebuild where the CUDA toolkit, cuDNN "
      "and NCCL are installed, or run with --device cpu.");
#endif
}

}  // namespace rn
