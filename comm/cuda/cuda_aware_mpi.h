// Whether MPI can read and write GPU memory itself (CUDA-aware MPI), which
// lets the ring all-reduce hand device buffers to MPI without staging.
#pragma once

namespace rn::comm {

// What the MPI library says at run time: Open MPI's MPIX_Query_cuda_support()
// where <mpi-ext.h> declares it (MPIX_CUDA_AWARE_SUPPORT defined), else false.
bool mpi_library_is_cuda_aware();
// mpi_library_is_cuda_aware(), unless the environment variable
// RN_CUDA_AWARE_MPI is 0 or 1 (tests, or an MPI that answers wrongly).
// Throws UserError for any other non-empty value.
bool mpi_is_cuda_aware();

}  // namespace rn::comm
