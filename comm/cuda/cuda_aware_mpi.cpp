#include "comm/cuda/cuda_aware_mpi.h"

#include <mpi.h>

#include <cstdlib>
#include <string>

#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif

#include "trainer/core/error.h"

namespace rn::comm {

bool mpi_library_is_cuda_aware() {
#if defined(MPIX_CUDA_AWARE_SUPPORT)
  // Compiled-in support (the macro) is not enough: the run-time answer also
  // covers a library built with CUDA but started without it.
  return MPIX_Query_cuda_support() == 1;
#else
  return false;
#endif
}

bool mpi_is_cuda_aware() {
  const char* env = std::getenv("RN_CUDA_AWARE_MPI");
  if (env == nullptr || *env == '\0') return mpi_library_is_cuda_aware();
  const std::string v = env;
  if (v == "0") return false;
  if (v == "1") return true;
  throw UserError("RN_CUDA_AWARE_MPI=" + v +
                  " is not valid; set it to 0 (stage GPU buffers through host memory) or 1 "
                  "(hand them to a CUDA-aware MPI), or unset it to ask the MPI library");
}

}  // namespace rn::comm
