// The ring all-reduce through StagedTransport, on the CPU (run under mpiexec
// with N ranks). Host memory stands in for device memory; a FakeStream stands
// in for the CUDA communication stream: the copier's copies and the ReduceOps'
// reductions queue on it and run, in order, only at sync()/finish(), exactly
// when a real stream may run them at the latest. So a missing wait (MPI sends
// a slot before its copy ran, a reduction reads scratch before the copy into
// it ran) gives wrong numbers here, deterministically. Released slots are
// poisoned, so a slot reused while a queued copy still reads it shows too.
//
// Expected values: integers whose every partial sum is exact in the type
// (as nccl-tests do), so the sum is known in any order; and the plain host
// ring on the same inputs, which the staged ring must match bit for bit
// (also for random fp32 inputs, where the order of additions shows).
#include <gtest/gtest.h>
#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "comm/allreduce.h"
#include "comm/communicator.h"
#include "comm/gradient_sync.h"
#include "comm/reduce_ops.h"
#include "comm/staged_transport.h"
#include "tests/mpi/allreduce_test_data.h"
#include "trainer/core/hash.h"

namespace rn::comm {
namespace {

constexpr uint8_t kPoison = 0xCD;

// Work queued in order, run at run_all(): a CUDA stream, as late as allowed.
class FakeStream {
 public:
  void push(std::function<void()> f) { q_.push_back(std::move(f)); }
  void run_all() {
    for (auto& f : q_) f();
    q_.clear();
  }

 private:
  std::vector<std::function<void()>> q_;
};

OwnedMemory poisoned_host(size_t bytes) {
  OwnedMemory m = host_reduce_ops().allocate(bytes);
  std::memset(m.get(), kPoison, bytes);
  return m;
}

// memcpy copier: at once (stream == nullptr) or queued on a FakeStream.
class TestCopier final : public StagingCopier {
 public:
  explicit TestCopier(FakeStream* stream) : stream_(stream) {}
  OwnedMemory alloc_host(size_t bytes) override { return poisoned_host(bytes); }
  void d2h(void* host, const void* device, size_t bytes) override {
    d2h_bytes += bytes;
    copy(host, device, bytes);
  }
  void h2d(void* device, const void* host, size_t bytes) override { copy(device, host, bytes); }
  void sync() override {
    if (stream_) stream_->run_all();
  }
  void released(void* host, size_t bytes) override { std::memset(host, kPoison, bytes); }
  size_t d2h_bytes = 0;  // copied device -> host so far

 private:
  void copy(void* dst, const void* src, size_t bytes) {
    if (stream_)
      stream_->push([=] { std::memcpy(dst, src, bytes); });
    else
      std::memcpy(dst, src, bytes);
  }
  FakeStream* stream_;
};

// Host arithmetic queued on a FakeStream, like kernels on a CUDA stream.
class QueuedOps final : public ReduceOps {
 public:
  explicit QueuedOps(FakeStream& s) : s_(s) {}
  void reduce_add(DType t, void* dst, const void* src, size_t n) override {
    s_.push([=] { host_reduce_ops().reduce_add(t, dst, src, n); });
  }
  void divide(DType t, void* buf, size_t n, float divisor) override {
    s_.push([=] { host_reduce_ops().divide(t, buf, n, divisor); });
  }
  void convert(DType to, void* dst, DType from, const void* src, size_t n) override {
    s_.push([=] { host_reduce_ops().convert(to, dst, from, src, n); });
  }
  void finish() override { s_.run_all(); }
  OwnedMemory allocate(size_t bytes) override { return poisoned_host(bytes); }

 private:
  FakeStream& s_;
};

// One way of running the ring over "device" memory.
struct Setup {
  Staging staging;
  bool queued;  // FakeStream (asynchronous copies and reductions) or immediate
  std::string name() const {
    return std::string(staging == Staging::kPinnedHost ? "staged" : "direct") + (queued ? "_queued" : "_immediate");
  }
};

struct Device {
  FakeStream stream;
  TestCopier copier;
  QueuedOps queued_ops;
  ReduceOps& ops;
  explicit Device(bool queued)
      : copier(queued ? &stream : nullptr),
        queued_ops(stream),
        ops(queued ? static_cast<ReduceOps&>(queued_ops) : host_reduce_ops()) {}
};

using testdata::exact_value;
using testdata::load;
using testdata::round_to;

// Runs `ar` on this rank's inputs (in a buffer with a guard zone), returns the result bytes.
std::vector<uint8_t> run_on(Allreducer& ar, const std::vector<float>& in, DType t, ReduceOp op, const char* label) {
  const size_t count = in.size(), bytes = count * dtype_size(t);
  std::vector<uint8_t> buf(bytes + 64, 0xAB);
  pack(t, in.data(), buf.data(), count);
  ar.run(buf.data(), count, t, op, WaitInfo{label, 0});
  for (size_t i = bytes; i < buf.size(); ++i) {
    EXPECT_EQ(buf[i], 0xAB) << label << ": wrote past the end";
    if (buf[i] != 0xAB) break;
  }
  buf.resize(bytes);
  return buf;
}

class StagedRingTest : public testing::TestWithParam<Setup> {};

TEST_P(StagedRingTest, ExactSumsAndBitIdenticalToTheHostRing) {
  Communicator comm(MPI_COMM_WORLD, 120.0);
  const int n = comm.size(), rank = comm.rank();
  Device dev(GetParam().queued);
  const size_t sizes[] = {
      0, 1, size_t(n > 1 ? n - 1 : 1), size_t(n), size_t(n) + 1, size_t(n) * 7 + 3, size_t(n) * 1000 + 3, 65537};
  for (size_t segment_bytes : {size_t(2), size_t(12), size_t(4096), size_t(256) * 1024}) {
    auto plain = make_ring_allreducer(comm, segment_bytes);
    auto staged = make_staged_ring_allreducer(comm, dev.copier, GetParam().staging, dev.ops, segment_bytes);
    staged->reserve(65537, DType::kF32);
    for (DType t : {DType::kF32, DType::kBF16, DType::kF16})
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage})
        for (size_t count : sizes) {
          if (count / std::max<size_t>(1, segment_bytes / dtype_size(t)) > 4000) continue;  // too many messages
          const std::string label = GetParam().name() + " seg " + std::to_string(segment_bytes) + " " + dtype_name(t) +
                                    (op == ReduceOp::kSum ? " sum" : " avg") + " count " + std::to_string(count) +
                                    " N=" + std::to_string(n);
          std::vector<float> in(count);
          for (size_t i = 0; i < count; ++i) in[i] = exact_value(t, i, rank);
          const auto got = run_on(*staged, in, t, op, label.c_str());
          const auto want = run_on(*plain, in, t, op, label.c_str());
          size_t wrong = 0, first_wrong = count;
          for (size_t i = 0; i < count; ++i) {
            float sum = 0;
            for (int r = 0; r < n; ++r) sum += exact_value(t, i, r);
            const float expect = op == ReduceOp::kSum ? sum : round_to(t, sum / float(n));
            if (load(t, got.data(), i) != expect && wrong++ == 0) first_wrong = i;
          }
          EXPECT_EQ(wrong, 0u) << label << ": first wrong element " << first_wrong;
          EXPECT_TRUE(got == want) << label << ": differs from the host ring";
          const auto hashes = comm.allgather(fnv1a64(got.data(), got.size()), "test hash");
          for (int r = 1; r < n; ++r) EXPECT_EQ(hashes[size_t(r)], hashes[0]) << label << ": rank " << r << " differs";
        }
  }
}

TEST_P(StagedRingTest, RandomFp32MatchesTheHostRingBitForBit) {
  Communicator comm(MPI_COMM_WORLD, 120.0);
  Device dev(GetParam().queued);
  std::mt19937 gen(1234u + unsigned(comm.rank()));
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (size_t segment_bytes : {size_t(12), size_t(4096)}) {
    auto plain = make_ring_allreducer(comm, segment_bytes);
    auto staged = make_staged_ring_allreducer(comm, dev.copier, GetParam().staging, dev.ops, segment_bytes);
    for (size_t count : {size_t(5), size_t(3001), size_t(20011)}) {
      std::vector<float> in(count);
      for (float& v : in) v = dist(gen);
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage}) {
        const auto got = run_on(*staged, in, DType::kF32, op, "random staged");
        const auto want = run_on(*plain, in, DType::kF32, op, "random plain");
        EXPECT_TRUE(got == want) << GetParam().name() << " seg " << segment_bytes << " count " << count;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Setups, StagedRingTest,
                         testing::Values(Setup{Staging::kPinnedHost, false}, Setup{Staging::kPinnedHost, true},
                                         Setup{Staging::kNone, false}, Setup{Staging::kNone, true}),
                         [](const testing::TestParamInfo<Setup>& i) { return i.param.name(); });

// reserve() sizes the slot pool for the ring's messages in flight: running
// any count up to the reserved one allocates no further slot.
TEST(StagedTransport, PoolSizedAtReserveDoesNotGrow) {
  Communicator comm(MPI_COMM_WORLD, 120.0);
  const int n = comm.size();
  FakeStream stream;
  TestCopier copier(&stream);
  QueuedOps ops(stream);
  StagedTransport transport(comm, copier, Staging::kPinnedHost);
  const size_t segment_bytes = 64, max_count = 5000;
  auto ring = make_ring_allreducer(transport, segment_bytes, ops);
  for (DType t : {DType::kF32, DType::kBF16}) {
    const size_t seg = segment_bytes / dtype_size(t);
    ring->reserve(max_count, t);
    transport.reserve(ring_messages_in_flight(n, max_count, seg), seg * dtype_size(t));
  }
  const size_t reserved = transport.slots();
  for (DType t : {DType::kF32, DType::kBF16})
    for (size_t count : {size_t(1), size_t(n) * 3 + 1, size_t(977), max_count}) {
      std::vector<float> in(count, 1.f);
      const auto got = run_on(*ring, in, t, ReduceOp::kSum, "pool");
      for (size_t i = 0; i < count; ++i) ASSERT_EQ(load(t, got.data(), i), float(n)) << "count " << count;
    }
  EXPECT_EQ(transport.slots(), reserved) << "the slot pool grew after reserve()";
}

// Staged through host slots, each byte of the buffer is copied to the host
// once: every chunk is sent from the device once (n - 1 reduce-scatter
// sends and the owned chunk), and the all-gather passes received segments
// on from their slots (Transport::forward) instead of copying them back.
// The results are checked too: a forwarded slot freed before its copy to
// the device has run would leave the poison in the buffer.
TEST(StagedTransport, EveryByteIsCopiedToTheHostOnce) {
  Communicator comm(MPI_COMM_WORLD, 120.0);
  const int n = comm.size(), rank = comm.rank();
  FakeStream stream;
  TestCopier copier(&stream);
  QueuedOps ops(stream);
  auto ring = make_staged_ring_allreducer(comm, copier, Staging::kPinnedHost, ops, 64);
  for (DType t : {DType::kF32, DType::kBF16})
    for (size_t count : {size_t(1), size_t(n) * 3 + 1, size_t(977), size_t(5000)}) {
      std::vector<float> in(count);
      for (size_t i = 0; i < count; ++i) in[i] = exact_value(t, i, rank);
      const size_t before = copier.d2h_bytes;
      const auto got = run_on(*ring, in, t, ReduceOp::kSum, "host once");
      if (n > 1) {
        EXPECT_EQ(copier.d2h_bytes - before, count * dtype_size(t)) << "count " << count;
      }
      for (size_t i = 0; i < count; ++i) {
        float want = 0;
        for (int r = 0; r < n; ++r) want += exact_value(t, i, r);
        ASSERT_EQ(load(t, got.data(), i), want) << "count " << count << " element " << i;
      }
    }
}

// Records whether any bucket's wait() came before its mark() of that step.
class CheckingFence final : public StreamFence {
 public:
  explicit CheckingFence(size_t buckets) : marks_(buckets), waits_(buckets, 0) {}
  void mark(size_t b) override { marks_.at(b).fetch_add(1); }
  void wait(size_t b) override {  // communication thread only
    if (marks_.at(b).load() <= waits_.at(b)) ++early_;
    ++waits_[b];
  }
  int early() const { return early_; }
  int marks(size_t b) const { return marks_.at(b).load(); }

 private:
  std::vector<std::atomic<int>> marks_;
  std::vector<int> waits_;
  int early_ = 0;
};

// GradientSync's bf16 wire packing goes through the all-reducer's ReduceOps
// (so it can run on a GPU), in order with the fence: same bits as the host.
TEST(StagedTransport, GradientSyncWithQueuedOpsAndFenceMatchesHost) {
  Communicator comm(MPI_COMM_WORLD, 120.0);
  const int n = comm.size(), rank = comm.rank();
  const size_t count = 10007;
  std::vector<size_t> offsets;
  for (size_t o = 0; o < count; o += 1000) offsets.push_back(o);
  std::vector<float> in(count);
  for (size_t i = 0; i < count; ++i) in[i] = exact_value(DType::kBF16, i, rank) * 0.25f;

  GradientSyncOptions opts;
  opts.bucket_bytes = 3000 * 4;
  opts.wire = DType::kBF16;
  std::vector<float> host_grads = in;
  {
    auto ring = make_ring_allreducer(comm, 4096);
    GradientSync sync(*ring, host_grads.data(), count, offsets, opts);
    for (int step = 0; step < 2; ++step) {
      host_grads = in;
      sync.begin_step();
      for (size_t i = offsets.size(); i-- > 0;) sync.grads_ready(offsets[i]);
      sync.finish_step();
    }
  }

  FakeStream stream;
  TestCopier copier(&stream);
  QueuedOps ops(stream);
  auto staged = make_staged_ring_allreducer(comm, copier, Staging::kPinnedHost, ops, 4096);
  CheckingFence fence(offsets.size());
  opts.fence = &fence;
  std::vector<float> dev_grads = in;
  {
    GradientSync sync(*staged, dev_grads.data(), count, offsets, opts);
    ASSERT_GE(sync.buckets(), 3u);
    for (int step = 0; step < 2; ++step) {
      dev_grads = in;
      sync.begin_step();
      for (size_t i = offsets.size(); i-- > 0;) sync.grads_ready(offsets[i]);
      sync.finish_step();
    }
  }
  EXPECT_EQ(fence.early(), 0) << "a bucket's all-reduce started before its mark";
  for (size_t i = 0; i < count; ++i) {
    float sum = 0;
    for (int r = 0; r < n; ++r) sum += exact_value(DType::kBF16, i, r) * 0.25f;
    ASSERT_EQ(dev_grads[i], round_to(DType::kBF16, sum / float(n))) << "element " << i;
  }
  EXPECT_EQ(std::memcmp(dev_grads.data(), host_grads.data(), count * 4), 0);
}

// Without overlap the all-reduce starts in finish_step, but each bucket's
// fence is still marked when backward reports it: work the caller queues in
// between (the next batch's upload) must not delay the all-reduce. One mark
// per bucket and step.
TEST(GradientSyncFence, WithoutOverlapMarksEachBucketAsBackwardReportsIt) {
  Communicator comm(MPI_COMM_WORLD, 120.0);
  const size_t count = 10007;
  std::vector<size_t> offsets;
  for (size_t o = 0; o < count; o += 1000) offsets.push_back(o);
  std::vector<float> grads(count, 1.f);
  auto ring = make_ring_allreducer(comm, 4096);
  CheckingFence fence(offsets.size());
  GradientSyncOptions opts;
  opts.bucket_bytes = 3000 * 4;
  opts.overlap = false;
  opts.fence = &fence;
  GradientSync sync(*ring, grads.data(), count, offsets, opts);
  ASSERT_GE(sync.buckets(), 3u);
  for (int step = 1; step <= 2; ++step) {
    sync.begin_step();
    for (size_t i = offsets.size(); i-- > 0;) {
      sync.grads_ready(offsets[i]);
      for (size_t b = 0; b < sync.buckets(); ++b)  // marked once its range is final, not before
        EXPECT_EQ(fence.marks(b), sync.bucket(b).begin >= offsets[i] ? step : step - 1)
            << "bucket " << b << " after offset " << offsets[i] << " in step " << step;
    }
    sync.finish_step();
    for (size_t b = 0; b < sync.buckets(); ++b) EXPECT_EQ(fence.marks(b), step) << "bucket " << b;
  }
  EXPECT_EQ(fence.early(), 0);
  for (size_t i = 0; i < count; ++i) ASSERT_EQ(grads[i], 1.f) << "element " << i;  // the mean of ones
}

}  // namespace
}  // namespace rn::comm
