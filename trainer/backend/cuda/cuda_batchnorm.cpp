// Batch normalisation with batch statistics on cuDNN
// (cudnnBatchNormalizationForwardTrainingEx / BackwardEx), with the tail
// (ReLU, residual add + ReLU) fused by cuDNN where it can.
//
// The cuDNN configurations tried, in order:
//  - NHWC bf16/fp16 with a tail and C % 4 == 0:
//  CUDNN_BATCHNORM_SPATIAL_PERSISTENT
//    with bnOps BN_ACTIVATION (kRelu) or BN_ADD_ACTIVATION (kAddRelu, z the
//    residual, dz its gradient): cuDNN documents these fused ops for NHWC
//    half (its "semi-persistent NHWC kernel"), and C % 4 == 0 for the add;
//  - NHWC bf16/fp16: SPATIAL_PERSISTENT with bnOps BN;
//  - anything (fp32 NCHW, the reference mode): CUDNN_BATCHNORM_SPATIAL, bnOps BN.
// A configuration cuDNN turns down (rejected(): unsupported shape, type,
// layout or parameters; not a missing library or a bad pointer), from the
// size queries at creation or from the first training forward, which then
// launched nothing, gives way to the next, with a one-line note. A backward
// turned down after its forward ran falls back to the last configuration
// (plain BN, the tail emulated), which recomputes the batch statistics
// from x for that one call.
// Without fused ops the tail is emulated with the own kernels: forward
// y = relu(bn(x) [+ z]) after cuDNN's BN; backward g = (y > 0 ? dy : 0),
// dz = g, then cuDNN's BN backward of g. So every tail works in every mode.
//
// Statistics: the layer keeps the running averages (with axpby); the
// interface's mean/var receive this batch's mean and biased variance. They
// come from cuDNN's documented outputs, its running averages with factor 1
// (the batch mean and unbiased variance; the variance is then scaled by
// (m-1)/m, m = N*H*W): cuDNN's saved mean and inverse std-dev are private
// to its backward ("should not be used directly by the user", their
// contents vary with the mode) and stay in the kernel. Eval
// (forward_inference) and frozen BN (global_stats) normalise with given
// statistics on the own kernels (cuda::bn_stats_forward / bn_stats_backward).
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "trainer/backend/cuda/cuda_backend.h"
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_descriptors.h"
#include "trainer/backend/cuda/cuda_kernels.h"

namespace rn {
namespace {

const float kOne = 1.f, kZero = 0.f;

struct BnConfig {
  cudnnBatchNormMode_t mode;
  cudnnBatchNormOps_t ops;
};

const char* ops_name(cudnnBatchNormOps_t o) {
  return o == CUDNN_BATCHNORM_OPS_BN              ? "BN"
         : o == CUDNN_BATCHNORM_OPS_BN_ACTIVATION ? "BN_ACTIVATION"
                                                  : "BN_ADD_ACTIVATION";
}
const char* mode_name(cudnnBatchNormMode_t m) {
  return m == CUDNN_BATCHNORM_SPATIAL_PERSISTENT ? "SPATIAL_PERSISTENT" : "SPATIAL";
}

// The statuses with which cuDNN turns a configuration down (before doing
// anything). Not among them: an incompatible driver or cudart, a missing
// sublibrary, the wrong architecture, a null or misaligned pointer, a
// stream mismatch: those are faults to report, not configurations to skip.
bool rejected(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER:
    case CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER:
    case CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED:
    case CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH:
    case CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH:
    case CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER:
    case CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART:
    case CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH:
    case CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING:
    case CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE:
    case CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API:
      return false;
    default:  // the rest of both categories: this shape, type, layout or parameter is not handled
      return CUDNN_STATUS_CATEGORY(s) == CUDNN_STATUS_BAD_PARAM ||
             CUDNN_STATUS_CATEGORY(s) == CUDNN_STATUS_NOT_SUPPORTED;
  }
}

class CudaBatchNorm final : public BatchNormKernel {
 public:
  CudaBatchNorm(CudaBackend& be, const Shape& s, Layout l, DType t, float eps, BnTail tail, bool global_stats)
      : be_(be),
        shape_(s),
        d_(cuda::dims4(s)),
        l_(l),
        t_(t),
        eps_(eps),
        tail_(tail),
        global_(global_stats),
        x_desc_(d_, l, t) {
    if (global_) return;  // the own kernels only: no cuDNN state
    const bool low = t != DType::kF32 && l == Layout::kNHWC;
    if (low && tail != BnTail::kNone && d_.c % 4 == 0)
      configs_.push_back({CUDNN_BATCHNORM_SPATIAL_PERSISTENT, tail == BnTail::kRelu
                                                                  ? CUDNN_BATCHNORM_OPS_BN_ACTIVATION
                                                                  : CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION});
    if (low) configs_.push_back({CUDNN_BATCHNORM_SPATIAL_PERSISTENT, CUDNN_BATCHNORM_OPS_BN});
    configs_.push_back({CUDNN_BATCHNORM_SPATIAL, CUDNN_BATCHNORM_OPS_BN});
    // cuDNN's state (statistics, reserve space, workspace) waits for the
    // first training forward: kernels made for evaluation shapes never need it.
  }

  void forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y, Tensor& mean, Tensor& var,
                        const Tensor* z) override {
    check_io(x, y, z, "forward_training");
    check_param(gamma, "gamma");
    check_param(beta, "beta");
    check_param(mean, "mean");
    check_param(var, "var");
    y_ = y;
    trained_ = true;
    cudaStream_t s = be_.compute();
    if (global_) {
      cuda::bn_stats_forward(x.raw(), z ? z->raw() : nullptr, y.raw(), d_, l_, t_, gamma.data(), beta.data(),
                             mean.data(), var.data(), eps_, tail_ != BnTail::kNone, s);
      return;
    }
    if (!stats_) {
      stats_ = be_.alloc_bytes(2 * static_cast<size_t>(stats_stride()) * sizeof(float), "batch-norm saved statistics");
      // Backward falls back to the last configuration; growing memory there
      // would synchronise the device mid-step (and can deadlock against
      // NCCL kernels in flight), so its needs are provided now.
      if (const Needs last = query(configs_.size() - 1); last.status == CUDNN_STATUS_SUCCESS) provide(last);
      select(0);
    }
    // cuDNN computes (1 - factor) * old + factor * batch, and 0 * a NaN
    // left in mean/var (an overflowed fp16 step) would stay NaN.
    const size_t stat_bytes = static_cast<size_t>(d_.c) * sizeof(float);
    CUDA_CHECK(cudaMemsetAsync(mean.data(), 0, stat_bytes, s));
    CUDA_CHECK(cudaMemsetAsync(var.data(), 0, stat_bytes, s));
    for (;;) {
      const BnConfig& c = configs_[cur_];
      const bool add = c.ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION;
      auto& ws = be_.workspace();
      const cudnnStatus_t st = cudnnBatchNormalizationForwardTrainingEx(
          be_.cudnn(), c.mode, c.ops, &kOne, &kZero, x_desc_.get(), x.raw(), add ? x_desc_.get() : nullptr,
          add ? z->raw() : nullptr, x_desc_.get(), y.raw(), bn_desc_->get(), gamma.data(), beta.data(),
          /*exponentialAverageFactor=*/1.0, /*resultRunningMean=*/mean.data(),
          /*resultRunningVariance=*/var.data(), eps_, saved_mean(), saved_inv_std(), fused() ? relu_.get() : nullptr,
          ws.data(), ws.bytes(), reserve_ptr(), reserve_bytes());
      if (st == CUDNN_STATUS_SUCCESS) break;
      // Only before the first success: backward must use forward's
      // configuration.
      if (rejected(st) && !ran_ && cur_ + 1 < configs_.size()) {
        turned_down(st, "cudnnBatchNormalizationForwardTrainingEx");
        select(cur_ + 1);
        continue;
      }
      throw_internal("cudnnBatchNormalizationForwardTrainingEx", __FILE__, __LINE__,
                     std::string(cudnnGetErrorString(st)) + " (" + config_str() + ")");
    }
    ran_ = true;
    if (!fused() && tail_ != BnTail::kNone) {  // the tail cuDNN did not fuse
      if (tail_ == BnTail::kAddRelu) cuda::add(y.raw(), z->raw(), y.raw(), t_, y.numel(), s);
      cuda::relu_forward(y.raw(), y.raw(), t_, y.numel(), s);
    }
    // Unbiased -> biased: the interface's batch variance. One value per
    // channel: cuDNN divided by m - 1 = 0, and the biased variance is 0.
    const double m = double(d_.n) * double(d_.h) * double(d_.w);
    if (m > 1)
      cuda::axpby(float((m - 1) / m), var.data(), 0.f, var.data(), d_.c, s);
    else
      CUDA_CHECK(cudaMemsetAsync(var.data(), 0, stat_bytes, s));
  }

  void forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                         const Tensor& var, Tensor& y, const Tensor* z) override {
    check_io(x, y, z, "forward_inference");
    check_param(gamma, "gamma");
    check_param(beta, "beta");
    check_param(mean, "mean");
    check_param(var, "var");
    cuda::bn_stats_forward(x.raw(), z ? z->raw() : nullptr, y.raw(), d_, l_, t_, gamma.data(), beta.data(), mean.data(),
                           var.data(), eps_, tail_ != BnTail::kNone, be_.compute());
  }

  // With batch statistics, mean/var are not read: cuDNN's saved mean and
  // inverse std-dev of the same forward are used.
  void backward(const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                const Tensor& var, Tensor& dx, Tensor& dgamma, Tensor& dbeta, Tensor* dz) override {
    RN_CHECK(trained_, "batch-norm backward before forward_training");
    check_act(x, "x");
    check_act(dy, "dy");
    check_act(dx, "dx");
    RN_CHECK((dz != nullptr) == (tail_ == BnTail::kAddRelu), "batch norm: dz is for the bn+add+relu tail only");
    if (dz) check_act(*dz, "dz");
    check_param(gamma, "gamma");
    check_param(dgamma, "dgamma");
    check_param(dbeta, "dbeta");
    cudaStream_t s = be_.compute();
    if (global_) {
      check_param(mean, "mean");
      check_param(var, "var");
      cuda::bn_stats_backward(x.raw(), y_.raw(), dy.raw(), d_, l_, t_, gamma.data(), mean.data(), var.data(), eps_,
                              tail_ != BnTail::kNone, dx.raw(), dz ? dz->raw() : nullptr, dgamma.data(), dbeta.data(),
                              s);
      return;
    }
    cudnnStatus_t st = cudnn_backward(x, dy, gamma, beta, dx, dgamma, dbeta, dz, /*saved_stats=*/true);
    if (st != CUDNN_STATUS_SUCCESS && rejected(st) && cur_ + 1 < configs_.size()) {
      // cuDNN ran the forward but turns down its backward: plain BN with
      // the emulated tail from here on (y_, the ReLU output, gives the
      // mask). This once it recomputes the statistics from x: the saved
      // ones belong to the mode that saved them.
      turned_down(st, "cudnnBatchNormalizationBackwardEx");
      select(configs_.size() - 1);
      st = cudnn_backward(x, dy, gamma, beta, dx, dgamma, dbeta, dz, /*saved_stats=*/false);
    }
    if (st != CUDNN_STATUS_SUCCESS)
      throw_internal("cudnnBatchNormalizationBackwardEx", __FILE__, __LINE__,
                     std::string(cudnnGetErrorString(st)) + " (" + config_str() + ")");
  }

 private:
  // Backward in the current configuration (the emulated ReLU first where
  // cuDNN does not fuse the tail); cuDNN's status. saved_stats: use the
  // forward's saved mean and inverse std-dev (else cuDNN recomputes them).
  cudnnStatus_t cudnn_backward(const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& beta, Tensor& dx,
                               Tensor& dgamma, Tensor& dbeta, Tensor* dz, bool saved_stats) {
    cudaStream_t s = be_.compute();
    const BnConfig& c = configs_[cur_];
    const bool act = fused(), add = c.ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION;
    const void* g = dy.raw();
    if (!act && tail_ != BnTail::kNone) {
      // Through the emulated ReLU: g = (y > 0 ? dy : 0), which is also the residual's gradient.
      void* masked = tail_ == BnTail::kAddRelu ? dz->raw() : be_.scratch().data();
      cuda::relu_backward(y_.raw(), dy.raw(), masked, t_, dy.numel(), s);
      g = masked;
    }
    auto& ws = be_.workspace();
    return cudnnBatchNormalizationBackwardEx(
        be_.cudnn(), c.mode, c.ops, &kOne, &kZero, &kOne, &kZero, x_desc_.get(), x.raw(), act ? x_desc_.get() : nullptr,
        act ? y_.raw() : nullptr, x_desc_.get(), g, add ? x_desc_.get() : nullptr, add ? dz->raw() : nullptr,
        x_desc_.get(), dx.raw(), bn_desc_->get(), gamma.data(), beta.data(), dgamma.data(), dbeta.data(), eps_,
        saved_stats ? saved_mean() : nullptr, saved_stats ? saved_inv_std() : nullptr, act ? relu_.get() : nullptr,
        ws.data(), ws.bytes(), reserve_ptr(), reserve_bytes());
  }

  bool fused() const { return configs_[cur_].ops != CUDNN_BATCHNORM_OPS_BN; }
  float* saved_mean() const { return static_cast<float*>(stats_->data()); }
  // The inverse std-dev starts 256-byte aligned, as cudaMalloc'd memory would.
  int64_t stats_stride() const { return (d_.c + 63) / 64 * 64; }
  float* saved_inv_std() const { return saved_mean() + stats_stride(); }
  void* reserve_ptr() const { return reserve_ ? reserve_->data() : nullptr; }
  size_t reserve_bytes() const { return reserve_ ? reserve_->bytes() : 0; }

  std::string config_str() const {
    return fmt::format("{} {}, {} {} {}", mode_name(configs_[cur_].mode), ops_name(configs_[cur_].ops), dtype_name(t_),
                       layout_name(l_), shape_.str());
  }

  void turned_down(cudnnStatus_t st, const char* call) {
    be_.note_once(fmt::format("bn {} {} {} {} {}", mode_name(configs_[cur_].mode), ops_name(configs_[cur_].ops),
                              dtype_name(t_), layout_name(l_), d_.c),
                  fmt::format("{} turned down batch norm {} ({}); using the next configuration", call, config_str(),
                              cudnnGetErrorString(st)));
  }

  // What a configuration needs besides its descriptors.
  struct Needs {
    cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
    const char* call = "";  // the query that failed
    size_t workspace = 0, reserve = 0, scratch = 0;
  };

  // Sets bn_desc_ for configs_[i] and asks cuDNN what that configuration
  // needs, with the descriptors the calls themselves pass.
  Needs query(size_t i) {
    const BnConfig& c = configs_[i];
    const bool act = c.ops != CUDNN_BATCHNORM_OPS_BN, add = c.ops == CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION;
    bn_desc_.emplace(x_desc_, c.mode);
    const cudnnActivationDescriptor_t a = act ? relu_.get() : nullptr;
    const cudnnTensorDescriptor_t x = x_desc_.get(), y = act ? x : nullptr, z = add ? x : nullptr;
    Needs n;
    size_t fwd = 0, bwd = 0;
    n.call = "cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize";
    n.status = cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(be_.cudnn(), c.mode, c.ops, x, z, x,
                                                                        bn_desc_->get(), a, &fwd);
    if (n.status == CUDNN_STATUS_SUCCESS) {
      n.call = "cudnnGetBatchNormalizationBackwardExWorkspaceSize";
      n.status = cudnnGetBatchNormalizationBackwardExWorkspaceSize(be_.cudnn(), c.mode, c.ops, x, y, x, z, x,
                                                                   bn_desc_->get(), a, &bwd);
    }
    if (n.status == CUDNN_STATUS_SUCCESS) {
      n.call = "cudnnGetBatchNormalizationTrainingExReserveSpaceSize";
      n.status = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(be_.cudnn(), c.mode, c.ops, a, x, &n.reserve);
    }
    // A non-null workspace is one of the conditions of cuDNN's fast NHWC path.
    n.workspace = std::max<size_t>({fwd, bwd, 1});
    // The emulated ReLU of kRelu needs a masked gradient (kAddRelu uses dz).
    if (!act && tail_ == BnTail::kRelu) n.scratch = static_cast<size_t>(d_.numel()) * dtype_size(t_);
    return n;
  }

  void provide(const Needs& n) {
    be_.workspace().reserve(n.workspace);
    be_.scratch().reserve(n.scratch);
    if (n.reserve > reserve_bytes()) {
      reserve_.reset();
      reserve_ = be_.alloc_bytes(n.reserve, "batch-norm reserve space");
    }
  }

  // Makes configs_[i] (or the first later one cuDNN accepts) current: its
  // parameter descriptor, workspace (in the backend's arena) and reserve
  // space.
  void select(size_t i) {
    for (cur_ = i;; ++cur_) {
      const Needs n = query(cur_);
      if (n.status != CUDNN_STATUS_SUCCESS) {
        if (rejected(n.status) && cur_ + 1 < configs_.size()) {
          turned_down(n.status, n.call);
          continue;
        }
        throw_internal(n.call, __FILE__, __LINE__,
                       std::string(cudnnGetErrorString(n.status)) + " (" + config_str() + ")");
      }
      provide(n);
      return;
    }
  }

  void check_act(const Tensor& t, const char* what) const {
    RN_CHECK(t.shape() == shape_ && t.layout() == l_ && t.dtype() == t_,
             fmt::format("batch norm {} {} {}: {} is {} {} {}", shape_.str(), layout_name(l_), dtype_name(t_), what,
                         t.shape().str(), layout_name(t.layout()), dtype_name(t.dtype())));
  }

  void check_io(const Tensor& x, const Tensor& y, const Tensor* z, const char* call) const {
    check_act(x, "x");
    check_act(y, "y");
    RN_CHECK((z != nullptr) == (tail_ == BnTail::kAddRelu),
             std::string("batch norm ") + call + ": z is the residual of the bn+add+relu tail only");
    if (z) check_act(*z, "z");
  }

  void check_param(const Tensor& p, const char* what) const {
    RN_CHECK(
        p.numel() == d_.c && p.dtype() == DType::kF32,
        fmt::format("batch norm over {} channels: {} is {} {}", d_.c, what, p.shape().str(), dtype_name(p.dtype())));
  }

  CudaBackend& be_;
  Shape shape_;
  cuda::Dims4 d_;
  Layout l_;
  DType t_;
  float eps_;
  BnTail tail_;
  bool global_;
  cuda::TensorDesc x_desc_;  // x, y, z, dx, dy, dz alike
  cuda::ReluDesc relu_;
  std::vector<BnConfig> configs_;
  size_t cur_ = 0;
  bool ran_ = false;      // a cuDNN training forward succeeded: the configuration is fixed
  bool trained_ = false;  // forward_training ran (backward needs its y and statistics)
  std::optional<cuda::BnParamDesc> bn_desc_;
  std::shared_ptr<Buffer> stats_;    // cuDNN's saved mean [C], then at stats_stride() the inverse std-dev [C]
  std::shared_ptr<Buffer> reserve_;  // cuDNN's reserve space, forward -> backward
  Tensor y_;                         // the last training forward's output (the ReLU mask)
};

}  // namespace

std::unique_ptr<BatchNormKernel> CudaBackend::make_batchnorm(const Shape& s, Layout l, DType dtype, float eps,
                                                             BnTail tail, bool global_stats) {
  RN_CHECK(s.rank() == 4, "batch norm needs a 4-D input, got " + s.str());
  if (!(double(eps) >= CUDNN_BN_MIN_EPSILON))
    throw UserError(
        fmt::format("batch-norm epsilon {} is below cuDNN's "
                    "minimum {}; use a larger epsilon (e.g. 1e-5)",
                    eps, CUDNN_BN_MIN_EPSILON));
  return std::make_unique<CudaBatchNorm>(*this, s, l, dtype, eps, tail, global_stats);
}

}  // namespace rn
