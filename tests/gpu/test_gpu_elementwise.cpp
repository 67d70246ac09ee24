// The CUDA backend's elementwise helpers and data movement: fill, axpby,
// add, copy with layout and dtype conversion, and the to_host/from_host
// round trip. Most results here are exact (no arithmetic, or one correctly
// rounded operation), so they are compared for equality with what the host
// computes, and against the CPU backend where it has the op.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace rn::gpu_test {
namespace {

const auto kAllPrecisions = ::testing::Values(DType::kF32, DType::kBF16, DType::kF16);

std::string dtype_param(const ::testing::TestParamInfo<DType>& info) { return dtype_name(info.param); }

class GpuElementwise : public GpuTestWithParam<DType> {};

// Every element set, in any layout and dtype, including sizes that are not
// a multiple of any block size. The values are exact in bf16 and fp16.
TEST_P(GpuElementwise, Fill) {
  const DType t = GetParam();
  Backend& be = gpu(t);
  for (const Shape s : {Shape{1000003}, Shape{3, 5, 7, 11}}) {
    for (const Layout l : {Layout::kNCHW, Layout::kNHWC}) {
      if (s.rank() != 4 && l == Layout::kNHWC) continue;
      const Layout ll = s.rank() == 4 ? l : Layout::kNC;
      Tensor x = be.allocate(s, ll, t);
      for (const float v : {0.f, -2.75f, 0.5f}) {
        be.fill(x, v);
        EXPECT_TRUE(near("fill " + std::to_string(v) + " " + s.str() + " " + layout_name(ll), download(be, x),
                         HostVec(size_t(s.numel()), v), 0, s));
      }
    }
  }
}

// y = a y + b x on fp32 tensors (BN running statistics, the batch counter,
// gradient averaging): against the CPU backend (fused multiply-add or not:
// at most a rounding apart), and with y aliasing x.
TEST_P(GpuElementwise, Axpby) {
  Backend& be = gpu(GetParam());
  const Shape s{100003};
  Rng rng(9000);
  const HostVec x = rng.vec(size_t(s.numel())), y0 = rng.vec(size_t(s.numel()));
  HostVec got[2], want[2];
  Backend* bes[2] = {&cpu(), &be};
  for (int i = 0; i < 2; ++i) {
    Tensor xt = upload(*bes[i], x, s, Layout::kNC), yt = upload(*bes[i], y0, s, Layout::kNC);
    bes[i]->axpby(0.9f, yt, 0.1f * 1.25f, xt);
    (i ? got : want)[0] = download(*bes[i], yt);
    bes[i]->axpby(-0.5f, xt, 3.f, xt);  // y is x
    (i ? got : want)[1] = download(*bes[i], xt);
  }
  EXPECT_TRUE(near("axpby", got[0], want[0], kF32Tol, s));
  EXPECT_TRUE(near("axpby aliased", got[1], want[1], kF32Tol, s));
}

// out = a + b in the activation dtype and layout (the unfused residual
// add): computed in fp32 and rounded once to nearest even, so it equals the
// host's round_to(t, a + b) exactly (a + b of two fp32 values is itself
// rounded once in fp32 on both sides). Also with out aliasing a.
TEST_P(GpuElementwise, Add) {
  const DType t = GetParam();
  Backend& be = gpu(t);
  const Shape s{3, 16, 9, 7};
  const Layout l = be.activation_layout(s[1]);
  Rng rng(9100);
  const HostVec a = rounded(t, rng.vec(size_t(s.numel()))), b = rounded(t, rng.vec(size_t(s.numel())));
  HostVec want(a.size());
  for (size_t i = 0; i < a.size(); ++i) want[i] = round_to(t, a[i] + b[i]);
  Tensor at = upload(be, a, s, l, t);
  const Tensor bt = upload(be, b, s, l, t);
  Tensor out = allocate_poisoned(be, s, l, t);
  be.add(at, bt, out);
  EXPECT_TRUE(near("add", download(be, out), want, 0, s));
  be.add(at, bt, at);
  EXPECT_TRUE(near("add (out is a)", download(be, at), want, 0, s));
}

// Backend::copy between layouts and dtypes, both ways, against the host:
// fp32 -> fp32 in another layout is a permutation (exact); fp32 -> bf16/fp16
// is one round-to-nearest-even per element (exact against round_to); and
// bf16/fp16 -> fp32 is exact. The data include a bf16 tie, an fp16
// subnormal and a value beyond fp16's range (rounds to inf).
void expect_copy_converts(Backend& be, DType t, const Shape& s) {
  SCOPED_TRACE("shape " + s.str());
  Rng rng(9200 + uint64_t(s[1]));
  HostVec x = rng.vec(size_t(s.numel()), -4, 4);
  x[1] = 1e-6f;        // fp16 subnormal
  x[2] = 70000.f;      // beyond fp16: inf
  x[3] = 1.00390625f;  // 1 + 2^-8: a bf16 tie, rounds to even (1.0)
  const HostVec want = rounded(t, x);
  for (const Layout from : {Layout::kNCHW, Layout::kNHWC}) {
    for (const Layout to : {Layout::kNCHW, Layout::kNHWC}) {
      const std::string what =
          std::string("copy fp32 ") + layout_name(from) + " -> " + dtype_name(t) + " " + layout_name(to);
      const Tensor src = upload(be, x, s, from);
      Tensor mid = allocate_poisoned(be, s, to, t);
      be.copy(src, mid);
      // Back to fp32 in the source layout, then to the host with to_host.
      Tensor back = allocate_poisoned(be, s, from);
      be.copy(mid, back);
      HostVec got(x.size());
      be.synchronize();
      be.to_host(back, got.data());
      be.synchronize();
      if (t == DType::kF16) {
        // The inf is a correct rounding; near() rejects non-finite values.
        EXPECT_EQ(got[2], want[2]) << what;
        got[2] = 0.f;
        HostVec w = want;
        w[2] = 0.f;
        EXPECT_TRUE(near(what, got, w, 0, s));
      } else {
        EXPECT_TRUE(near(what, got, want, 0, s));
      }
    }
  }
}

// Few channels (a thread per pixel: 3 as in an RGB batch, 5, 8) and tiled
// transposes (9, and 37 with partial tiles both ways).
TEST_P(GpuElementwise, CopyConvertsLayoutAndDtype) {
  const DType t = GetParam();
  Backend& be = gpu(t);
  for (const Shape s : {Shape{2, 3, 4, 5}, Shape{2, 5, 3, 7}, Shape{3, 8, 1, 9}, Shape{2, 9, 3, 7}, Shape{2, 37, 5, 7}})
    expect_copy_converts(be, t, s);
  // Row-major 2-D (logits, features) and 1-D tensors.
  Rng rng(9201);
  const HostVec x = rng.vec(210, -4, 4);
  const Shape s2{6, 35};
  const Tensor src2 = upload(be, x, s2, Layout::kNC);
  Tensor dst2 = allocate_poisoned(be, s2, Layout::kNC);
  be.copy(src2, dst2);
  EXPECT_TRUE(near("copy fp32 [6, 35]", download(be, dst2), x, 0, s2));
}

// from_host then to_host gives back the same floats in every layout, on a
// backend of each precision (parameters, gradients and checkpoints go this
// way), bitwise: a negative zero stays negative.
TEST_P(GpuElementwise, HostRoundTrip) {
  Backend& be = gpu(GetParam());
  Rng rng(9300);
  struct Case {
    Shape s;
    Layout l;
  };
  for (const Case c : {Case{Shape{3, 5, 4, 7}, Layout::kNCHW}, Case{Shape{3, 5, 4, 7}, Layout::kNHWC},
                       Case{Shape{7, 60}, Layout::kNC}, Case{Shape{420}, Layout::kNC}}) {
    HostVec x = rng.vec(size_t(c.s.numel()), -100, 100);
    x[0] = -0.f;
    Tensor t = allocate_poisoned(be, c.s, c.l);
    be.from_host(x.data(), t);
    be.synchronize();
    HostVec got(x.size(), 42.f);
    be.to_host(t, got.data());
    be.synchronize();
    EXPECT_TRUE(near(std::string("round trip ") + c.s.str() + " " + layout_name(c.l), got, x, 0, c.s));
    EXPECT_TRUE(std::signbit(got[0])) << "-0 lost in " << layout_name(c.l);
  }
}

// Uploads from pinned memory (the loader's batches, Backend::pin_host_memory)
// are asynchronous: the data must still arrive whole and in order. Two
// batches through one pinned buffer, each used by a kernel (add) before the
// next upload, and a layout/dtype conversion on the way for NHWC.
TEST_P(GpuElementwise, PinnedUploadsArriveWholeAndInOrder) {
  Backend& be = gpu(GetParam());
  Rng rng(9400);
  const Shape s{4, 3, 16, 16};
  const Layout l = be.activation_layout(3);
  HostVec staging(size_t(s.numel()));
  std::shared_ptr<void> pin = be.pin_host_memory(staging.data(), staging.size() * sizeof(float));
  ASSERT_NE(pin, nullptr) << "the CUDA backend could not page-lock 48 KiB";
  const DType t = be.activation_dtype();
  Tensor x = allocate_poisoned(be, s, l, t), sum = allocate_poisoned(be, s, l, t);
  Tensor zero = be.allocate(s, l, t);
  be.fill(zero, 0.f);
  for (int batch = 0; batch < 2; ++batch) {
    // Values exact in bf16 and fp16: multiples of 1/8 in [-8, 8].
    HostVec want = rng.vec(staging.size(), -8, 8);
    for (auto& v : want) v = std::round(v * 8) / 8;
    staging = want;
    be.from_host(staging.data(), x);
    be.add(x, zero, sum);
    HostVec got(staging.size(), 42.f);
    be.to_host(sum, got.data());  // waits for the upload and the add
    EXPECT_TRUE(near("pinned upload " + std::to_string(batch), got, want, 0, s));
  }
}

// The upload ring (Backend::make_upload_ring, the trainer's batches): an
// upload overlaps the work queued on the batch before, but must not
// overwrite a tensor before the kernels queued ahead of the next upload have
// read it. Six batches from six pinned arrays; after each upload a queue of
// large adds keeps the compute stream busy (so the next copies are free to
// run early) before the batch is copied aside; every copy must hold its own
// batch, not one uploaded two calls later.
TEST_P(GpuElementwise, UploadRingKeepsEachBatchForTheKernelsQueuedBeforeTheNextUpload) {
  Backend& be = gpu(GetParam());
  Rng rng(9500);
  const Shape s{64, 3, 64, 64};  // 3 MiB a batch
  constexpr int kBatches = 6;
  std::vector<HostVec> host(kBatches);
  std::vector<std::shared_ptr<void>> pins;
  for (auto& h : host) {
    h = rng.vec(size_t(s.numel()), -8, 8);
    pins.push_back(be.pin_host_memory(h.data(), h.size() * sizeof(float)));
    ASSERT_NE(pins.back(), nullptr) << "the CUDA backend could not page-lock 3 MiB";
  }
  const auto ring = be.make_upload_ring(s);
  Tensor busy = be.allocate(Shape{int64_t(1) << 24}, Layout::kNC);  // 64 MiB: each add takes ~0.1 ms
  be.fill(busy, 1.f);
  std::vector<Tensor> kept;
  for (int b = 0; b < kBatches; ++b) {
    const Tensor& x = ring->upload(host[size_t(b)].data(), s[0]);
    for (int i = 0; i < 20; ++i) be.add(busy, busy, busy);
    kept.push_back(allocate_poisoned(be, s, Layout::kNCHW));
    be.copy(x, kept.back());
  }
  for (int b = 0; b < kBatches; ++b)
    EXPECT_TRUE(near("batch " + std::to_string(b), download(be, kept[size_t(b)]), host[size_t(b)], 0, s));
}

// UploadRing::wait_for_host_reads: after it the host array may change (the
// loader reuses a batch's memory) without touching what was uploaded. The
// third upload's copy waits behind a queue of large adds, so without the
// wait the overwrite below would land before the copy reads the array.
TEST_P(GpuElementwise, UploadRingHostArrayIsFreeAfterWaitForHostReads) {
  Backend& be = gpu(GetParam());
  Rng rng(9600);
  const Shape s{64, 3, 64, 64};
  HostVec host = rng.vec(size_t(s.numel()), -8, 8);
  const HostVec original = host;
  const auto pin = be.pin_host_memory(host.data(), host.size() * sizeof(float));
  ASSERT_NE(pin, nullptr) << "the CUDA backend could not page-lock 3 MiB";
  const auto ring = be.make_upload_ring(s);
  Tensor busy = be.allocate(Shape{int64_t(1) << 24}, Layout::kNC);
  be.fill(busy, 1.f);
  Tensor kept = allocate_poisoned(be, s, Layout::kNCHW);
  for (int b = 0; b < 3; ++b) {
    for (int i = 0; i < 50; ++i) be.add(busy, busy, busy);  // the copy after upload 2 waits for these
    const Tensor& x = ring->upload(host.data(), s[0]);
    if (b == 2) {
      ring->wait_for_host_reads();
      std::fill(host.begin(), host.end(), 1e9f);
      be.copy(x, kept);
    }
  }
  EXPECT_TRUE(near("upload before the overwrite", download(be, kept), original, 0, s));
}

// A short batch (UploadRing::upload with fewer images): its images in the
// first rows and zeros after them, in a slot that held other values.
TEST_P(GpuElementwise, UploadRingPadsAShortBatchWithZeros) {
  Backend& be = gpu(GetParam());
  Rng rng(9700);
  const Shape s{5, 3, 8, 8};
  const size_t n = size_t(s.numel()), per = n / 5;
  const HostVec full = rng.vec(n, -8, 8), images = rng.vec(n, -8, 8);
  const auto ring = be.make_upload_ring(s);
  ring->upload(full.data(), 5);
  ring->upload(full.data(), 5);
  for (const int64_t count : {int64_t(3), int64_t(0), int64_t(5)}) {
    SCOPED_TRACE(std::to_string(count) + " images");
    HostVec want(n, 0.f);
    std::copy_n(images.begin(), size_t(count) * per, want.begin());
    EXPECT_TRUE(near("padded upload", download(be, ring->upload(images.data(), count)), want, 0, s));
    ring->upload(full.data(), 5);  // the other slot
  }
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuElementwise, kAllPrecisions, dtype_param);

}  // namespace
}  // namespace rn::gpu_test
