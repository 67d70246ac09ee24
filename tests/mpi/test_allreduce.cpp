// The all-reduce on the real MPI world (run under mpiexec with N ranks).
//
// Inputs are small integers (|x| <= 6), so every partial sum of up to 8
// ranks is exact in fp32, bf16 and fp16 and the expected result is known
// whatever order the ring adds in (as nccl-tests do). Averages are the exact
// sum divided once, rounded to the wire type: the same single rounding the
// implementation must perform. All ranks must also hold identical bits.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "comm/allreduce.h"
#include "comm/communicator.h"
#include "tests/mpi/allreduce_test_data.h"
#include "trainer/core/hash.h"

namespace rn::comm {
namespace {

using testdata::load;
using testdata::round_to;

int value(size_t i, int rank) { return int((i * 31 + size_t(rank) * 17) % 13) - 6; }

struct Case {
  Algorithm algo;
  size_t segment_bytes;
};

void check(Communicator& comm, Allreducer& ar, DType t, ReduceOp op, size_t count, const char* label) {
  const int n = comm.size(), rank = comm.rank();
  std::vector<uint8_t> buf(count * dtype_size(t) + 16, 0xAB);  // +16: a guard zone that must stay untouched
  std::vector<float> in(count);
  for (size_t i = 0; i < count; ++i) in[i] = float(value(i, rank));
  pack(t, in.data(), buf.data(), count);
  ar.run(buf.data(), count, t, op, WaitInfo{"test all-reduce", 0});

  size_t wrong = 0, first_wrong = count;
  for (size_t i = 0; i < count; ++i) {
    int sum = 0;
    for (int r = 0; r < n; ++r) sum += value(i, r);
    const float want = op == ReduceOp::kSum ? float(sum) : round_to(t, float(sum) / float(n));
    if (load(t, buf.data(), i) != want) {
      if (wrong++ == 0) first_wrong = i;
    }
  }
  for (size_t i = count * dtype_size(t); i < buf.size(); ++i) ASSERT_EQ(buf[i], 0xAB) << label << ": wrote past the end";
  EXPECT_EQ(wrong, 0u) << label << " dtype " << dtype_name(t) << " count " << count << " N=" << n
                       << (op == ReduceOp::kSum ? " sum" : " avg") << ": first wrong element " << first_wrong;
  // Identical bits on every rank.
  buf.resize(count * dtype_size(t));
  const auto hashes = comm.allgather(fnv1a64(buf.data(), buf.size()), "test hash");
  for (int r = 1; r < n; ++r) EXPECT_EQ(hashes[size_t(r)], hashes[0]) << label << ": rank " << r << " differs from rank 0";
}

class AllreduceTest : public testing::TestWithParam<Case> {};

TEST_P(AllreduceTest, ExactForEverySizeDtypeAndOp) {
  Communicator comm(MPI_COMM_WORLD, 120.0);
  const int n = comm.size();
  auto ar = make_allreducer(GetParam().algo, comm, GetParam().segment_bytes);
  const size_t sizes[] = {0, 1, size_t(n > 1 ? n - 1 : 1), size_t(n), size_t(n) * 1000 + 3, 65537,
                          (size_t(3) << 20) / 4 + 7 /* ~3 MiB of fp32 */};
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16})
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage})
      for (size_t count : sizes) {
        // One-element segments mean one message per element: keep those small.
        if (GetParam().segment_bytes < 1024 && count > 5000) continue;
        check(comm, *ar, t, op, count, algorithm_name(GetParam().algo));
      }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, AllreduceTest,
                         testing::Values(Case{Algorithm::kRing, 256 * 1024}, Case{Algorithm::kRing, 4096},
                                         Case{Algorithm::kRing, 2 /* one element per segment */},
                                         Case{Algorithm::kMpi, 0}),
                         [](const testing::TestParamInfo<Case>& i) {
                           return std::string(algorithm_name(i.param.algo)) + "_seg" +
                                  std::to_string(i.param.segment_bytes);
                         });

}  // namespace
}  // namespace rn::comm
