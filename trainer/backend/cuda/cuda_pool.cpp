// Pooling. The global average pool (window = the whole map, stride 1, no
// padding) with an fp32 output, as the classifier takes it whatever the
// activations' dtype (trainer/nn/pool2d.cpp), runs on the own kernels; max
// pooling and any other average pool on cuDNN (NHWC or NCHW descriptors as
// the tensors are). Averages exclude the padding, as the CPU backend's
// oneDNN pooling_avg_exclude_padding. cuDNN's backward recomputes the
// arg-max from the forward's x and y, which the kernel keeps referenced; the
// deterministic max mode adds overlapping windows' gradients in a fixed
// order (the plain one uses atomics), so runs repeat bit for bit. The
// legacy pooling API documents no bf16 support, but cuDNN 9.19's
// libcudnn_ops.so.9 carries __nv_bfloat16 instances of its pooling kernels,
// the deterministic max backward included (its symbol table); the GPU tests
// (GpuMaxPool, bf16) are what settles it on a card.
#include <fmt/format.h>

#include <optional>

#include "trainer/backend/cuda/cuda_backend.h"
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_descriptors.h"
#include "trainer/backend/cuda/cuda_kernels.h"

namespace rn {
namespace {

const float kOne = 1.f, kZero = 0.f;

class CudaPool final : public PoolKernel {
 public:
  CudaPool(CudaBackend& be, const PoolGeom& g, Layout xl, Layout yl)
      : be_(be),
        g_(g),
        xl_(xl),
        yl_(yl),
        global_(g.kind == PoolKind::kAvg && g.kernel_h == g.h_in && g.kernel_w == g.w_in && g.stride == 1 &&
                g.pad == 0),
        pool_(g.kind == PoolKind::kMax ? CUDNN_POOLING_MAX_DETERMINISTIC : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
              g.kernel_h, g.kernel_w, g.pad, g.stride) {
    RN_CHECK(g.h_out() > 0 && g.w_out() > 0,
             fmt::format("pooling window {}x{} on a {}x{} map", g.kernel_h, g.kernel_w, g.h_in, g.w_in));
  }

  void forward(const Tensor& x, Tensor& y, bool training) override {
    check(x, Shape{g_.n, g_.c, g_.h_in, g_.w_in}, xl_, "x");
    check(y, Shape{g_.n, g_.c, g_.h_out(), g_.w_out()}, yl_, "y");
    // An fp32 output from a global window: the classifier's features (any input dtype).
    own_ = global_ && y.dtype() == DType::kF32;
    if (own_) {
      cuda::global_avg_pool_forward(x.raw(), cuda::dims4(x.shape()), x.layout(), x.dtype(), y.data(), be_.compute());
    } else {
      RN_CHECK(x.dtype() == y.dtype(), "cuDNN pooling keeps the dtype: x and y differ");
      descriptors(x.dtype());
      CUDNN_CHECK(cudnnPoolingForward(be_.cudnn(), pool_.get(), &kOne, x_desc_->get(), x.raw(), &kZero, y_desc_->get(),
                                      y.raw()));
    }
    x_ = x;
    y_ = y;
  }

  void backward(const Tensor& dy, Tensor& dx) override {
    RN_CHECK(!x_.empty(), "pooling backward before forward");
    check(dy, y_.shape(), yl_, "dy");
    check(dx, x_.shape(), xl_, "dx");
    RN_CHECK(dy.dtype() == y_.dtype() && dx.dtype() == x_.dtype(), "pooling backward: dtypes differ from forward's");
    if (own_) {
      cuda::global_avg_pool_backward(dy.data(), cuda::dims4(dx.shape()), dx.layout(), dx.dtype(), dx.raw(),
                                     be_.compute());
      return;
    }
    CUDNN_CHECK(cudnnPoolingBackward(be_.cudnn(), pool_.get(), &kOne, y_desc_->get(), y_.raw(), y_desc_->get(),
                                     dy.raw(), x_desc_->get(), x_.raw(), &kZero, x_desc_->get(), dx.raw()));
  }

 private:
  void check(const Tensor& t, const Shape& s, Layout l, const char* what) const {
    RN_CHECK(t.shape() == s && t.layout() == l,
             fmt::format("pooling: {} is {} {}, expected {} {}", what, t.shape().str(), layout_name(t.layout()),
                         s.str(), layout_name(l)));
  }

  // Descriptors for the data type of the tensors (made at the first forward:
  // make_pool is not told the dtype; no device memory involved).
  void descriptors(DType t) {
    if (x_desc_ && desc_dtype_ == t) return;
    x_desc_.emplace(cuda::Dims4{g_.n, g_.c, g_.h_in, g_.w_in}, xl_, t);
    y_desc_.emplace(cuda::Dims4{g_.n, g_.c, g_.h_out(), g_.w_out()}, yl_, t);
    desc_dtype_ = t;
  }

  CudaBackend& be_;
  PoolGeom g_;
  Layout xl_, yl_;
  bool global_;
  bool own_ = false;  // the last forward ran the own global-average kernel
  cuda::PoolDesc pool_;
  std::optional<cuda::TensorDesc> x_desc_, y_desc_;
  DType desc_dtype_ = DType::kF32;
  Tensor x_,
      y_;  // the last forward's input and output (cuDNN's backward reads both)
};

}  // namespace

std::unique_ptr<PoolKernel> CudaBackend::make_pool(const PoolGeom& g, Layout x, Layout y) {
  return std::make_unique<CudaPool>(*this, g, x, y);
}

}  // namespace rn
