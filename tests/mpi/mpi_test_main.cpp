// main() of rn_mpi_tests, run as `mpiexec -np N rn_mpi_tests`. Rank 0 prints
// GoogleTest's usual output; other ranks print only their failures (with
// their rank), and every rank's exit status reflects its own results, so
// mpiexec fails if any rank failed.
#include <gtest/gtest.h>

#include <cstdio>

#include "comm/mpi_world.h"

namespace {

class FailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  rn::comm::MpiSession mpi(&argc, &argv);
  testing::InitGoogleTest(&argc, argv);
  if (mpi.world().rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(mpi.world().rank));
  }
  return RUN_ALL_TESTS();
}
