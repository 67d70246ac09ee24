// The GPU all-reduce (comm/cuda) on device buffers, under mpiexec with 2 or
// 3 ranks. Rank r uses GPU local_rank % visible devices, so ranks may share
// one GPU: that exercises every path except NCCL, which needs one GPU per
// rank and skips saying so. Without a visible GPU every test skips with
// "no CUDA device: ...".
//
// Inputs are integers whose every partial sum is exact in the type (as
// nccl-tests do), so the result is known whatever order an algorithm adds
// in; averages are that sum divided once and rounded once. bf16/fp16 are
// therefore exact too. The ring must also give the same bits as the host ring
// on the same inputs (same order, same fp32 rounding), for random fp32 data as well.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "comm/allreduce.h"
#include "comm/communicator.h"
#include "comm/cuda/cuda_aware_mpi.h"
#include "comm/cuda/device_allreduce.h"
#include "comm/gradient_sync.h"
#include "tests/gpu_mpi/mpi_gpu_fixture.h"
#include "tests/mpi/allreduce_test_data.h"
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/core/error.h"
#include "trainer/core/hash.h"

namespace rn::comm {
namespace {

constexpr uint8_t kGuard = 0xAB;
constexpr size_t kGuardBytes = 64;

using testdata::exact_value;
using testdata::load;
using testdata::round_to;

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) { CUDA_CHECK(cudaMalloc(&p_, bytes == 0 ? 1 : bytes)); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

// RN_CUDA_AWARE_MPI for the lifetime of this object (read by the factory).
class ScopedAwareEnv {
 public:
  explicit ScopedAwareEnv(bool aware) { setenv("RN_CUDA_AWARE_MPI", aware ? "1" : "0", 1); }
  ~ScopedAwareEnv() { unsetenv("RN_CUDA_AWARE_MPI"); }
};

// The shared fixture plus the upload/run/compare helpers of this file.
class GpuTest : public gpu_test::MpiGpuTest {
 protected:
  // Uploads in (packed to t) into a device buffer with a guard zone, runs ar,
  // returns the result bytes; checks the guard zone.
  std::vector<uint8_t> run_device(Allreducer& ar, const std::vector<float>& in, DType t, ReduceOp op,
                                  const std::string& label) {
    const size_t count = in.size(), bytes = count * dtype_size(t);
    std::vector<uint8_t> host(bytes + kGuardBytes, kGuard);
    pack(t, in.data(), host.data(), count);
    DeviceBuffer dev(host.size());
    CUDA_CHECK(cudaMemcpy(dev.get(), host.data(), host.size(), cudaMemcpyHostToDevice));
    // From pageable memory cudaMemcpy may return before the data has landed,
    // and the all-reducer's stream does not wait for the legacy stream.
    CUDA_CHECK(cudaDeviceSynchronize());
    ar.run(dev.get(), count, t, op, WaitInfo{"GPU test all-reduce", 0});
    CUDA_CHECK(cudaMemcpy(host.data(), dev.get(), host.size(), cudaMemcpyDeviceToHost));
    for (size_t i = bytes; i < host.size(); ++i) {
      EXPECT_EQ(host[i], kGuard) << label << ": wrote past the end";
      if (host[i] != kGuard) break;
    }
    host.resize(bytes);
    return host;
  }

  std::vector<uint8_t> run_host(Allreducer& ar, const std::vector<float>& in, DType t, ReduceOp op) {
    std::vector<uint8_t> host(in.size() * dtype_size(t));
    pack(t, in.data(), host.data(), in.size());
    ar.run(host.data(), in.size(), t, op, WaitInfo{"host test all-reduce", 0});
    return host;
  }

  void expect_same_on_every_rank(const std::vector<uint8_t>& got, const std::string& label) {
    const auto hashes = comm_->allgather(fnv1a64(got.data(), got.size()), "test hash");
    for (size_t r = 1; r < hashes.size(); ++r) EXPECT_EQ(hashes[r], hashes[0]) << label << ": rank " << r << " differs";
  }
};

struct Variant {
  Algorithm algo;
  bool cuda_aware;  // RN_CUDA_AWARE_MPI=1 (run only where the library is)
  size_t segment_bytes;
  std::string name() const {
    return std::string(algorithm_name(algo)) + (cuda_aware ? "_cudaaware" : "") + "_seg" +
           std::to_string(segment_bytes);
  }
};

class GpuAllreduceTest : public GpuTest, public testing::WithParamInterface<Variant> {
 protected:
  // The all-reducer of this variant; nullptr for NCCL when ranks share a GPU.
  std::unique_ptr<Allreducer> make() {
    const Variant v = GetParam();
    ScopedAwareEnv env(v.cuda_aware);
    try {
      return make_device_allreducer(v.algo, *comm_, v.segment_bytes, device_);
    } catch (const AgreedError&) {
      if (v.algo == Algorithm::kNccl) return nullptr;  // ranks share a GPU: reported by the caller
      throw;
    }
  }
};

TEST_P(GpuAllreduceTest, ExactSumsSameOnEveryRankAndAsTheHostRing) {
  const Variant v = GetParam();
  if (v.cuda_aware && !mpi_library_is_cuda_aware())
    GTEST_SKIP() << "this MPI library is not CUDA-aware "
                    "(MPIX_Query_cuda_support), so the device-pointer path "
                    "cannot run here";
  auto ar = make();
  if (!ar) GTEST_SKIP() << "NCCL needs one GPU per rank and these ranks share a GPU";
  const int n = comm_->size(), rank = comm_->rank();
  auto host_ring = make_ring_allreducer(*comm_, v.algo == Algorithm::kRing ? v.segment_bytes : 256 * 1024);
  const size_t sizes[] = {0,
                          1,
                          size_t(n > 1 ? n - 1 : 1),
                          size_t(n),
                          size_t(n) * 7 + 3,
                          size_t(n) * 1000 + 3,
                          65537,
                          (size_t(3) << 20) / 4 + 7};
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16})
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage})
      for (size_t count : sizes) {
        if (v.segment_bytes < 1024 && count > 5000) continue;  // one message per element: keep small
        const std::string label = v.name() + " " + dtype_name(t) + (op == ReduceOp::kSum ? " sum" : " avg") +
                                  " count " + std::to_string(count) + " N=" + std::to_string(n);
        std::vector<float> in(count);
        for (size_t i = 0; i < count; ++i) in[i] = exact_value(t, i, rank);
        const auto got = run_device(*ar, in, t, op, label);
        size_t wrong = 0, first_wrong = count;
        for (size_t i = 0; i < count; ++i) {
          float sum = 0;
          for (int r = 0; r < n; ++r) sum += exact_value(t, i, r);
          const float want = op == ReduceOp::kSum ? sum : round_to(t, sum / float(n));
          if (load(t, got.data(), i) != want && wrong++ == 0) first_wrong = i;
        }
        EXPECT_EQ(wrong, 0u) << label << ": first wrong element " << first_wrong;
        EXPECT_TRUE(got == run_host(*host_ring, in, t, op)) << label << ": differs from the host ring";
        expect_same_on_every_rank(got, label);
      }
}

// Random fp32: the order of additions shows. The GPU ring adds in the host
// ring's order with the same rounding, so the bits must match.
TEST_P(GpuAllreduceTest, RingRandomFp32BitIdenticalToTheHostRing) {
  const Variant v = GetParam();
  if (v.algo != Algorithm::kRing) GTEST_SKIP() << v.name() << " adds in its own order; exact data only";
  if (v.cuda_aware && !mpi_library_is_cuda_aware()) GTEST_SKIP() << "this MPI library is not CUDA-aware";
  auto ar = make();
  auto host_ring = make_ring_allreducer(*comm_, v.segment_bytes);
  std::mt19937 gen(99u + unsigned(comm_->rank()));
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (size_t count : {size_t(7), size_t(4099), size_t(300007)}) {
    if (v.segment_bytes < 1024 && count > 5000) continue;
    std::vector<float> in(count);
    for (float& x : in) x = dist(gen);
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage}) {
      const auto got = run_device(*ar, in, DType::kF32, op, v.name());
      EXPECT_TRUE(got == run_host(*host_ring, in, DType::kF32, op)) << v.name() << " count " << count;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, GpuAllreduceTest,
                         testing::Values(Variant{Algorithm::kRing, false, 256 * 1024},
                                         Variant{Algorithm::kRing, false, 4096},
                                         Variant{Algorithm::kRing, false, 2 /* one element per message */},
                                         Variant{Algorithm::kRing, true, 256 * 1024},
                                         Variant{Algorithm::kMpi, false, 0},
                                         Variant{Algorithm::kNccl, false, 0}),
                         [](const testing::TestParamInfo<Variant>& i) { return i.param.name(); });

// GradientSync on device gradients: buckets fenced after the compute stream,
// fp32 and bf16 wire (packed by kernels): same bits as on the host.
TEST_F(GpuTest, GradientSyncOnDeviceMatchesHost) {
  const int rank = comm_->rank();
  const size_t count = 100003;
  std::vector<size_t> offsets;
  for (size_t o = 0; o < count; o += 7001) offsets.push_back(o);
  std::mt19937 gen(7u + unsigned(rank));
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> in(count);
  for (float& x : in) x = dist(gen);

  cudaStream_t compute;
  CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  for (DType wire : {DType::kF32, DType::kBF16}) {
    GradientSyncOptions opts;
    opts.bucket_bytes = 20000 * 4;
    opts.wire = wire;

    std::vector<float> host = in;
    auto host_ring = make_ring_allreducer(*comm_, 64 * 1024);
    {
      GradientSync sync(*host_ring, host.data(), count, offsets, opts);
      sync.begin_step();
      for (size_t i = offsets.size(); i-- > 0;) sync.grads_ready(offsets[i]);
      sync.finish_step();
    }

    ScopedAwareEnv env(false);
    auto ar = make_device_allreducer(Algorithm::kRing, *comm_, 64 * 1024, device_);
    auto fence = make_cuda_stream_fence(compute, offsets.size());
    opts.fence = fence.get();
    DeviceBuffer grads(count * 4);
    std::vector<float> got(count);
    {
      GradientSync sync(*ar, static_cast<float*>(grads.get()), count, offsets, opts);
      ASSERT_GE(sync.buckets(), 3u);
      for (int step = 0; step < 2; ++step) {
        CUDA_CHECK(cudaMemsetAsync(grads.get(), 0xFF, count * 4,
                                   compute));  // NaNs if a bucket runs too early
        CUDA_CHECK(cudaMemcpyAsync(grads.get(), in.data(), count * 4, cudaMemcpyHostToDevice, compute));
        sync.begin_step();
        for (size_t i = offsets.size(); i-- > 0;) sync.grads_ready(offsets[i]);
        sync.finish_step();
        CUDA_CHECK(cudaMemcpy(got.data(), grads.get(), count * 4, cudaMemcpyDeviceToHost));
        EXPECT_EQ(std::memcmp(got.data(), host.data(), count * 4), 0)
            << "wire " << dtype_name(wire) << " step " << step << ": device gradients differ from the host's";
      }
    }
  }
  CUDA_CHECK(cudaStreamDestroy(compute));
}

}  // namespace
}  // namespace rn::comm
