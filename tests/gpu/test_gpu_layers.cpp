// The remaining layer ops on the CUDA backend against the CPU backend: max
// pooling 3x3/2 pad 1, global average pooling (fp32 [N, C] out), the fully
// connected layer, the own ReLU kernels and the option-A shortcut; and that mixed precision
// really keeps activations NHWC in bf16/fp16 between layers.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <ostream>
#include <string>
#include <tuple>

#include "tests/gpu/gpu_test_util.h"
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/nn/batchnorm2d.h"
#include "trainer/nn/conv2d.h"
#include "trainer/nn/linear.h"
#include "trainer/nn/pool2d.h"

namespace rn::gpu_test {
namespace {

const auto kAllPrecisions = ::testing::Values(DType::kF32, DType::kBF16, DType::kF16);

std::string dtype_param(const ::testing::TestParamInfo<DType>& info) { return dtype_name(info.param); }

// --- max pooling ---

// Within each (n, c) plane, distinct multiples of 2^-7 in (-2, 2): exact in
// bf16 and fp16, and no ties, so the arg-max (and with it the gradient's
// destination) is the same on both backends whatever their tie rule.
HostVec distinct_planes(const Shape& s, Rng& rng) {
  const size_t plane = size_t(s[2] * s[3]);
  if (plane > 511) throw std::invalid_argument("distinct_planes: at most 511 values per plane");
  HostVec v;
  std::vector<int> k(511);
  std::iota(k.begin(), k.end(), -255);
  for (int64_t p = 0; p < s[0] * s[1]; ++p) {
    for (size_t i = k.size() - 1; i > 0; --i) std::swap(k[i], k[size_t(rng.next() % (i + 1))]);
    for (size_t i = 0; i < plane; ++i) v.push_back(float(k[i]) / 128.f);
  }
  return v;
}

struct PoolResult {
  HostVec y, dx;
};

PoolResult run_max_pool(Backend& be, const Shape& s, const HostVec& x, const HostVec& dy) {
  const DType t = be.activation_dtype();
  const Layout l = be.activation_layout(s[1]);
  const PoolGeom g{s[0], s[1], s[2], s[3], 3, 3, 2, 1, PoolKind::kMax};
  const Shape ys{s[0], s[1], g.h_out(), g.w_out()};
  auto k = be.make_pool(g, l, l);
  const Tensor xt = upload(be, x, s, l, t), dyt = upload(be, dy, ys, l, t);
  Tensor y = allocate_poisoned(be, ys, l, t), dx = allocate_poisoned(be, s, l, t);
  k->forward(xt, y, /*training=*/true);
  k->backward(dyt, dx);
  return {download(be, y), download(be, dx)};
}

class GpuMaxPool : public GpuTestWithParam<std::tuple<DType, Shape>> {};

// Forward selects an element: exact in every precision. Backward sums the
// gradients of the (up to 4, with 3x3 windows at stride 2) windows an
// element is the maximum of: fp32 1e-4; in mixed precision the partial sums
// may each be rounded to the storage type, up to 4 roundings: 4u.
TEST_P(GpuMaxPool, MatchesCpu) {
  const auto& [t, s] = GetParam();
  Rng rng(4000 + uint64_t(s[1] + s[2]));
  const HostVec x = distinct_planes(s, rng);
  const PoolGeom g{s[0], s[1], s[2], s[3], 3, 3, 2, 1, PoolKind::kMax};
  const HostVec dy = rounded(t, rng.vec(size_t(s[0] * s[1] * g.h_out() * g.w_out())));
  const PoolResult want = run_max_pool(cpu(), s, x, dy);
  const PoolResult got = run_max_pool(gpu(t), s, x, dy);
  EXPECT_TRUE(near("maxpool y", got.y, want.y, 0, Shape{s[0], s[1], g.h_out(), g.w_out()}));
  EXPECT_TRUE(near("maxpool dx", got.dx, want.dx, t == DType::kF32 ? kF32Tol : 4 * unit_roundoff(t), s));
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuMaxPool,
                         ::testing::Combine(kAllPrecisions, ::testing::Values(Shape{2, 8, 9, 9}, Shape{1, 16, 8, 10},
                                                                              Shape{3, 64, 7, 5}, Shape{2, 8, 2, 2})),
                         [](const ::testing::TestParamInfo<std::tuple<DType, Shape>>& info) {
                           const Shape& s = std::get<1>(info.param);
                           return std::string(dtype_name(std::get<0>(info.param))) + "_" + std::to_string(s[0]) + "x" +
                                  std::to_string(s[1]) + "x" + std::to_string(s[2]) + "x" + std::to_string(s[3]);
                         });

// --- global average pooling (the layer: it allocates as a ResNet does) ---

class GpuGlobalAvgPool : public GpuTestWithParam<DType> {};

// y is fp32 whatever the activations' dtype: a mean in fp32 of exact inputs,
// fp32 tolerance. dx = dy / (h w) rounded once to the storage type:
// storage_tol.
TEST_P(GpuGlobalAvgPool, MatchesCpu) {
  const DType t = GetParam();
  for (const Shape s : {Shape{3, 16, 7, 9}, Shape{2, 64, 1, 1}, Shape{4, 512, 2, 2}}) {
    SCOPED_TRACE("input " + s.str());
    Rng rng(5000 + uint64_t(s[1]));
    const HostVec x = rounded(t, rng.vec(size_t(s.numel())));
    const HostVec dy = rng.vec(size_t(s[0] * s[1]));  // fp32: the classifier's dx
    HostVec y[2], dx[2];
    Backend* bes[2] = {&cpu(), &gpu(t)};
    for (int b = 0; b < 2; ++b) {
      Backend& be = *bes[b];
      GlobalAvgPool pool(be);
      const Tensor xt = upload(be, x, s, be.activation_layout(s[1]), be.activation_dtype());
      const Tensor& yt = pool.forward(xt, Mode::kTrain);
      EXPECT_EQ(yt.shape(), (Shape{s[0], s[1]}));
      EXPECT_EQ(yt.layout(), Layout::kNC);
      EXPECT_EQ(yt.dtype(), DType::kF32);
      y[b] = download(be, yt);
      const Tensor dyt = upload(be, dy, Shape{s[0], s[1]}, Layout::kNC);
      dx[b] = download(be, pool.backward(dyt));
    }
    EXPECT_TRUE(near("avgpool y", y[1], y[0], kF32Tol, Shape{s[0], s[1]}));
    EXPECT_TRUE(near("avgpool dx", dx[1], dx[0], storage_tol(t), s));
  }
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuGlobalAvgPool, kAllPrecisions, dtype_param);

// --- fully connected ---

class GpuLinear : public GpuTestWithParam<DType> {};

// All fp32 tensors, and fp32 arithmetic in every mode: mixed precision
// keeps the classifier in fp32 (pool2d.cpp hands it fp32 features; the CUDA
// backend runs cuBLAS without TF32), so the fp32 tolerance everywhere. A
// backend that moved it to TF32 or bf16 tensor cores would miss this by
// ~1e-3 and should be a deliberate change of this test.
TEST_P(GpuLinear, MatchesCpu) {
  const DType t = GetParam();
  struct Case {
    int64_t n, in, out;
  };
  for (const Case c : {Case{3, 64, 10}, Case{2, 512, 1000}, Case{1, 2048, 7}}) {
    SCOPED_TRACE("n " + std::to_string(c.n) + " in " + std::to_string(c.in) + " out " + std::to_string(c.out));
    Rng rng(6000 + uint64_t(c.in));
    const double b = 1 / std::sqrt(double(c.in));
    const HostVec x = rng.vec(size_t(c.n * c.in)), w = rng.vec(size_t(c.out * c.in), -b, b);
    const HostVec bias = rng.vec(size_t(c.out), -b, b), dy = rng.vec(size_t(c.n * c.out));
    HostVec y[2], dx[2], dw[2], db[2];
    Backend* bes[2] = {&cpu(), &gpu(t)};
    for (int i = 0; i < 2; ++i) {
      Backend& be = *bes[i];
      ParamStore ps;
      Linear fc(be, ps, "fc", c.in, c.out);
      ps.allocate(be);
      set(be, fc.weight().value, w);
      set(be, fc.bias().value, bias);
      poison(be, ps.flat_grads());
      const Tensor xt = upload(be, x, Shape{c.n, c.in}, Layout::kNC);
      y[i] = download(be, fc.forward(xt, Mode::kTrain));
      dx[i] = download(be, fc.backward(upload(be, dy, Shape{c.n, c.out}, Layout::kNC)));
      dw[i] = download(be, fc.weight().grad);
      db[i] = download(be, fc.bias().grad);
    }
    const double tol = kF32Tol;
    EXPECT_TRUE(near("fc y", y[1], y[0], tol, Shape{c.n, c.out}));
    EXPECT_TRUE(near("fc dx", dx[1], dx[0], tol, Shape{c.n, c.in}));
    EXPECT_TRUE(near("fc dw", dw[1], dw[0], tol, Shape{c.out, c.in}));
    EXPECT_TRUE(near("fc db", db[1], db[0], tol));
  }
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuLinear, kAllPrecisions, dtype_param);

// --- ReLU and the option-A shortcut: exact in every precision ---

class GpuDataMovement : public GpuTestWithParam<DType> {};

// The own ReLU kernels (the batch norm's tail where cuDNN does not fuse
// it): max(x, 0) and its mask select values, no arithmetic, so they equal
// the host's bit for bit.
TEST_P(GpuDataMovement, ReluIsExact) {
  const DType t = GetParam();
  const Shape s{3, 16, 5, 7};
  const size_t n = size_t(s.numel());
  Rng rng(7000);
  const HostVec x = rounded(t, rng.vec(n)), dy = rounded(t, rng.vec(n));
  HostVec want_y(n), want_dx(n);
  for (size_t i = 0; i < n; ++i) {
    want_y[i] = std::max(x[i], 0.f);
    want_dx[i] = want_y[i] > 0 ? dy[i] : 0.f;
  }
  Backend& be = gpu(t);
  const Layout l = be.activation_layout(s[1]);
  const DType at = be.activation_dtype();
  const Tensor xt = upload(be, x, s, l, at), dyt = upload(be, dy, s, l, at);
  Tensor yt = allocate_poisoned(be, s, l, at), dxt = allocate_poisoned(be, s, l, at);
  const auto stream = static_cast<cudaStream_t>(be.stream());
  cuda::relu_forward(xt.raw(), yt.raw(), at, s.numel(), stream);
  cuda::relu_backward(yt.raw(), dyt.raw(), dxt.raw(), at, s.numel(), stream);
  EXPECT_TRUE(near("relu y", download(be, yt), want_y, 0, s));
  EXPECT_TRUE(near("relu dx", download(be, dxt), want_dx, 0, s));
}

// y[:, :Cx] = x[:, :, ::s, ::s], zeros after; backward the strided gather's
// transpose. Pure data movement: bitwise equal, zero channels included.
TEST_P(GpuDataMovement, ShortcutPadIsExact) {
  const DType t = GetParam();
  struct Case {
    Shape x;
    int64_t c_out, stride;
  };
  for (const Case c :
       {Case{Shape{3, 4, 7, 9}, 8, 2}, Case{Shape{2, 16, 8, 8}, 32, 2}, Case{Shape{1, 8, 5, 5}, 16, 1}}) {
    SCOPED_TRACE("x " + c.x.str() + " stride " + std::to_string(c.stride));
    const Shape ys{c.x[0], c.c_out, (c.x[2] + c.stride - 1) / c.stride, (c.x[3] + c.stride - 1) / c.stride};
    Rng rng(7100 + uint64_t(c.c_out));
    const HostVec x = rounded(t, rng.vec(size_t(c.x.numel()))), dy = rounded(t, rng.vec(size_t(ys.numel())));
    HostVec y[2], dx[2];
    Backend* bes[2] = {&cpu(), &gpu(t)};
    for (int i = 0; i < 2; ++i) {
      Backend& be = *bes[i];
      const DType at = be.activation_dtype();
      const Layout xl = be.activation_layout(c.x[1]), yl = be.activation_layout(c.c_out);
      const Tensor xt = upload(be, x, c.x, xl, at), dyt = upload(be, dy, ys, yl, at);
      Tensor yt = allocate_poisoned(be, ys, yl, at), dxt = allocate_poisoned(be, c.x, xl, at);
      be.shortcut_pad_forward(xt, yt, c.stride);
      be.shortcut_pad_backward(dyt, dxt, c.stride);
      y[i] = download(be, yt);
      dx[i] = download(be, dxt);
    }
    EXPECT_TRUE(near("shortcut y", y[1], y[0], 0, ys));
    EXPECT_TRUE(near("shortcut dx", dx[1], dx[0], 0, c.x));
  }
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuDataMovement, kAllPrecisions, dtype_param);

// --- where activations live ---

class GpuActivationStorage : public GpuTestWithParam<DType> {};

// The fp32 mode is the NCHW reference; mixed precision keeps activations
// NHWC in the storage type from the first convolution to the global pool
// (which hands fp32 [N, C] to the classifier). Checked on the layers'
// outputs, and on the bytes in device memory: the conv output read raw with
// cudaMemcpy must be its NCHW download rearranged to NHWC and encoded in the
// storage type, so the layout/dtype tags describe the storage.
TEST_P(GpuActivationStorage, LayersKeepTheBackendsLayoutAndDtype) {
  const DType t = GetParam();
  Backend& be = gpu(t);
  const Layout want_layout = t == DType::kF32 ? Layout::kNCHW : Layout::kNHWC;
  EXPECT_EQ(be.activation_dtype(), t);
  for (int64_t c : {3, 16, 64, 2048}) EXPECT_EQ(be.activation_layout(c), want_layout) << c << " channels";

  ParamStore ps;
  Conv2d conv(be, ps, "conv", 3, 16, 3, 1, 1, /*need_input_grad=*/false);
  BatchNorm2d bn(be, ps, "bn", 16, BnTail::kRelu);
  MaxPool2d maxpool(be, 3, 2, 1);
  GlobalAvgPool avgpool(be);
  ps.allocate(be);
  Rng rng(8000);
  set(be, conv.weight().value, rng.vec(16 * 3 * 3 * 3, -0.3, 0.3));
  be.fill(bn.gamma().value, 1.f);
  be.fill(bn.beta().value, 0.f);
  const Shape s{2, 3, 9, 11};
  const Tensor x = upload(be, rounded(t, rng.vec(size_t(s.numel()))), s, be.activation_layout(3), t);
  const Tensor& y = conv.forward(x, Mode::kTrain);
  const Tensor& h = bn.forward(y, Mode::kTrain);
  const Tensor& p = maxpool.forward(h, Mode::kTrain);
  const Tensor& f = avgpool.forward(p, Mode::kTrain);
  for (const Tensor* a : {&y, &h, &p}) {
    EXPECT_EQ(a->layout(), want_layout) << a->shape().str();
    EXPECT_EQ(a->dtype(), t) << a->shape().str();
    EXPECT_EQ(a->bytes(), size_t(a->numel()) * dtype_size(t));
  }
  EXPECT_EQ(f.dtype(), DType::kF32);
  EXPECT_EQ(f.layout(), Layout::kNC);

  // The conv output's bytes, as stored.
  be.synchronize();
  cudaPointerAttributes attr{};
  CUDA_CHECK(cudaPointerGetAttributes(&attr, y.raw()));
  EXPECT_EQ(attr.type, cudaMemoryTypeDevice) << "activations should be in device memory";
  std::vector<unsigned char> raw(y.bytes());
  CUDA_CHECK(cudaMemcpy(raw.data(), y.raw(), y.bytes(), cudaMemcpyDeviceToHost));
  const HostVec nchw = download(be, y);
  const Shape ys = y.shape();
  const int64_t C = ys[1], H = ys[2], W = ys[3];
  size_t mismatches = 0;
  for (int64_t n = 0; n < ys[0]; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j) {
          const int64_t at =
              want_layout == Layout::kNHWC ? ((n * H + i) * W + j) * C + c : ((n * C + c) * H + i) * W + j;
          float v = 0;
          if (t == DType::kF32) {
            std::memcpy(&v, raw.data() + at * 4, 4);
          } else if (t == DType::kBF16) {
            uint32_t b = 0;
            uint16_t h16;
            std::memcpy(&h16, raw.data() + at * 2, 2);
            b = uint32_t(h16) << 16;
            std::memcpy(&v, &b, 4);
          } else {
            _Float16 h16;
            std::memcpy(&h16, raw.data() + at * 2, 2);
            v = static_cast<float>(h16);
          }
          const float want = nchw[size_t(((n * C + c) * H + i) * W + j)];
          if (!(v == want)) ++mismatches;
        }
  EXPECT_EQ(mismatches, 0u) << "of " << y.numel() << " conv outputs, read raw as " << layout_name(want_layout) << " "
                            << dtype_name(t);
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuActivationStorage, kAllPrecisions, dtype_param);

}  // namespace
}  // namespace rn::gpu_test
