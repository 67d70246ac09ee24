// H5_CHECK: HDF5 C calls return negative on failure; name the call, file:line,
// rank and device like every other backend macro.
#pragma once

#include <hdf5.h>

#include "trainer/core/error.h"

#define H5_CHECK(call)                                                               \
  [&]() {                                                                            \
    auto r_ = (call);                                                                \
    if (r_ < 0) ::rn::throw_internal(#call, __FILE__, __LINE__, "HDF5 call failed"); \
    return r_;                                                                       \
  }()
