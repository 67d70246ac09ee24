// MPI_CHECK(call): throws rn::InternalError naming the MPI call, file:line,
// rank and device with MPI's error string. (MPI's default handler aborts on
// error; the world communicators set MPI_ERRORS_RETURN so we can say more.)
#pragma once

#include <mpi.h>

#include <string>

#include "trainer/core/error.h"

namespace rn::comm {
inline std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<size_t>(len));
}
}  // namespace rn::comm

#define MPI_CHECK(call)                                                                    \
  do {                                                                                     \
    const int rn_mpi_rc_ = (call);                                                         \
    if (rn_mpi_rc_ != MPI_SUCCESS)                                                         \
      ::rn::throw_internal(#call, __FILE__, __LINE__, ::rn::comm::mpi_error_string(rn_mpi_rc_)); \
  } while (0)
