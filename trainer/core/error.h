// Error reporting shared by every module.
//
// Two kinds of failure:
//  - UserError: the user can fix it (bad config key, bad value, missing file).
//    The message says what to change; main() prints it and exits with 2.
//  - InternalError: a library call or invariant failed. RN_CHECK and the
//    backend macros (DNNL_CALL, CUDA_CHECK, MPI_CHECK, ...) name the call,
//    file:line, MPI rank and device, so a log line from rank 37 of a 64-rank
//    job is enough to find the failing call.
#pragma once

#include <stdexcept>
#include <string>

namespace rn {

// Identity of this process, printed in every internal error. Set once at
// start-up (rank is 0 and device "cpu" until comm/ or a backend says more).
struct ProcessIdentity {
  int rank = 0;
  std::string device = "cpu";
};
ProcessIdentity& process_identity();

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A UserError that every rank raises together, after agreeing on it with a
// collective: the job can end with a normal MPI shutdown (each rank prints
// its own reason) instead of MPI_Abort, which may kill a rank before it speaks.
class AgreedError : public UserError {
 public:
  using UserError::UserError;
};

class InternalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Builds "<what> failed at file:line on rank R (device D): detail".
[[noreturn]] void throw_internal(const char* call, const char* file, int line,
                                 const std::string& detail);

}  // namespace rn

#define RN_CHECK(cond, detail)                                          \
  do {                                                                  \
    if (!(cond)) ::rn::throw_internal(#cond, __FILE__, __LINE__, (detail)); \
  } while (0)
