// NCCL_CHECK(call): throws rn::InternalError naming the NCCL call, file:line,
// rank and device with NCCL's error string (see trainer/core/error.h).
#pragma once

#include <nccl.h>

#include <string>

#include "trainer/core/error.h"

#define NCCL_CHECK(call)                                                                                     \
  do {                                                                                                       \
    const ncclResult_t rn_nccl_rc_ = (call);                                                                 \
    if (rn_nccl_rc_ != ncclSuccess)                                                                          \
      ::rn::throw_internal(#call, __FILE__, __LINE__,                                                        \
                           std::string(ncclGetErrorString(rn_nccl_rc_)) + ": " + ncclGetLastError(nullptr)); \
  } while (0)
