#include "comm/mpi_world.h"

#include <mpi.h>

#include "comm/mpi_check.h"
#include "trainer/core/error.h"

namespace rn::comm {

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &info_.rank));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &info_.size));
  process_identity().rank = info_.rank;
  RN_CHECK(provided >= MPI_THREAD_SERIALIZED,
           "this MPI library does not provide MPI_THREAD_SERIALIZED (got level " + std::to_string(provided) +
               "); the overlapped gradient all-reduce needs it");
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info_.rank, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_rank(node, &info_.local_rank));
  MPI_CHECK(MPI_Comm_size(node, &info_.local_size));
  MPI_CHECK(MPI_Comm_free(&node));
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_CHECK(MPI_Get_processor_name(name, &len));
  info_.host.assign(name, size_t(len));
}

MpiSession::~MpiSession() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

}  // namespace rn::comm
