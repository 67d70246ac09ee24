// Convolutions on cuDNN's legacy API (cudnnConvolutionForward,
// BackwardData, BackwardFilter).
//
// The algorithms are chosen once per ConvKey and cached in the backend
// (ConvPlan), by cuDNN's heuristics (gpu.conv_algo = heuristic: the first
// candidate that succeeds and fits the workspace limit) or by timing every
// candidate once on scratch buffers (find). All convolutions share the
// backend's workspace arena, grown to the largest need when a kernel is made.
//
// Mixed precision: the parameters are fp32 OIHW (master weights). A kernel
// converts them into its own bf16/fp16 OHWI copy in every forward and uses
// that copy in backward_data too; backward_weights computes a bf16/fp16 OHWI
// gradient into scratch and converts it into the fp32 OIHW gradient.
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "trainer/backend/cuda/cuda_backend.h"
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_descriptors.h"
#include "trainer/backend/cuda/cuda_kernels.h"

namespace rn {
namespace cuda {

struct ConvPlan {
  ConvPlan(const ConvKey& k, cudnnMathType_t math)
      : key(k),
        w_layout(k.x == Layout::kNHWC ? Layout::kNHWC : Layout::kNCHW),
        w_copy(w_layout != Layout::kNCHW || k.dtype != DType::kF32),
        x(Dims4{k.n, k.c_in, k.h_in, k.w_in}, k.x, k.dtype),
        y(Dims4{k.n, k.c_out, out_size(k.h_in, k), out_size(k.w_in, k)}, k.y, k.dtype),
        w(k.c_out, k.c_in, k.kernel, k.kernel, w_layout, k.dtype),
        fwd(k.pad, k.stride, math),
        bwd_data(k.pad, k.stride, math),
        bwd_filter(k.pad, k.stride, math) {}
  static int64_t out_size(int64_t in, const ConvKey& k) { return (in + 2 * k.pad - k.kernel) / k.stride + 1; }
  int64_t filter_numel() const { return key.c_out * key.c_in * key.kernel * key.kernel; }
  size_t max_workspace() const { return std::max({fwd_ws, has_bwd_data ? bwd_data_ws : size_t(0), bwd_filter_ws}); }

  ConvKey key;
  Layout w_layout;  // filter memory order: OIHW (kNCHW) or OHWI (kNHWC, matching NHWC activations)
  bool w_copy;      // the kernel converts the fp32 OIHW parameters into its own filter copy
  TensorDesc x, y;  // also dx and dy
  FilterDesc w;     // also dw
  // One per direction: each keeps the math type of its algorithm.
  ConvDesc fwd, bwd_data, bwd_filter;
  cudnnConvolutionFwdAlgo_t fwd_algo{};
  cudnnConvolutionBwdDataAlgo_t bwd_data_algo{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo{};
  size_t fwd_ws = 0, bwd_data_ws = 0, bwd_filter_ws = 0;  // workspace bytes
  bool has_bwd_data = false;
};

namespace {

// alpha/beta: float for fp32, bf16 and fp16 data.
const float kOne = 1.f, kZero = 0.f;

std::string describe(const ConvKey& k) {
  return fmt::format("{}x{}/{} pad {}, {} -> {} channels, input {}x{}x{} ({}, {})", k.kernel, k.kernel, k.stride, k.pad,
                     k.c_in, k.c_out, k.n, k.h_in, k.w_in, dtype_name(k.dtype), layout_name(k.x));
}

bool tensor_math(cudnnMathType_t m) { return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION; }

// Takes the first candidate (cuDNN orders them best first) that succeeded,
// obeys the math restriction of the mode (and gpu.deterministic) and whose
// workspace, queried again under its math type, fits the limit. Returns
// false with `why` listing the candidates when none does.
template <class Perf, class Algo, class WorkspaceOf>
bool choose(const std::vector<Perf>& perfs, int count, ConvDesc& conv, const CudaBackend& be, WorkspaceOf workspace_of,
            Algo* algo, size_t* ws, std::string* why) {
  const bool reference = be.reference_math();
  const size_t limit = be.options().workspace_bytes;
  const cudnnMathType_t initial = conv.math();
  for (int i = 0; i < count; ++i) {
    const Perf& p = perfs[i];
    std::string verdict;
    if (p.status != CUDNN_STATUS_SUCCESS) {
      verdict = cudnnGetErrorString(p.status);
    } else if (reference && tensor_math(p.mathType)) {
      verdict = "tensor-core math (not in the fp32 reference mode)";
    } else if (be.options().deterministic && p.determinism != CUDNN_DETERMINISTIC) {
      verdict = "not deterministic (gpu.deterministic)";
    } else {
      // The reference mode keeps FMA math: DEFAULT would allow TF32 on Ampere and newer.
      if (!reference) conv.set_math(p.mathType);
      size_t need = 0;
      const cudnnStatus_t s = workspace_of(p.algo, &need);
      need = std::max(need, p.memory);
      if (s == CUDNN_STATUS_SUCCESS && need <= limit) {
        *algo = p.algo;
        *ws = need;
        return true;
      }
      verdict = s != CUDNN_STATUS_SUCCESS ? cudnnGetErrorString(s)
                                          : fmt::format("needs {} MiB", (need + (1 << 20) - 1) >> 20);
    }
    *why += fmt::format("{}algorithm {}: {}", why->empty() ? "" : "; ", static_cast<int>(p.algo), verdict);
  }
  conv.set_math(initial);
  return false;
}

// The largest workspace among the candidates that succeeded, capped at the
// limit: what a timed search needs.
template <class Perf>
size_t search_workspace(const std::vector<Perf>& perfs, int count, size_t limit) {
  size_t ws = 0;
  for (int i = 0; i < count; ++i)
    if (perfs[i].status == CUDNN_STATUS_SUCCESS && perfs[i].memory <= limit) ws = std::max(ws, perfs[i].memory);
  return ws;
}

[[noreturn]] void no_algorithm(const char* direction, const ConvPlan& p, size_t limit, const std::string& why) {
  throw UserError(
      fmt::format("cuDNN offers no {} algorithm for the convolution {} within "
                  "gpu.workspace_mb = {} MiB ({}). Raise "
                  "gpu.workspace_mb if an algorithm needs more, set gpu.deterministic = false "
                  "if the candidates are not deterministic, or use another train.precision.",
                  direction, describe(p.key), limit >> 20, why.empty() ? "no candidates" : why));
}

// Scratch tensors for a timed search (contents irrelevant, zeroed so that no
// NaN pattern slows a candidate down); freed when the search is done.
struct SearchBuffers {
  SearchBuffers(CudaBackend& be, const ConvPlan& p) : be_(be) {
    const size_t t = dtype_size(p.key.dtype);
    const int64_t ho = ConvPlan::out_size(p.key.h_in, p.key), wo = ConvPlan::out_size(p.key.w_in, p.key);
    x = zeroed(static_cast<size_t>(p.key.n * p.key.c_in * p.key.h_in * p.key.w_in) * t, "convolution search input");
    y = zeroed(static_cast<size_t>(p.key.n * p.key.c_out * ho * wo) * t, "convolution search output");
    w = zeroed(static_cast<size_t>(p.filter_numel()) * t, "convolution search weights");
  }
  ~SearchBuffers() { (void)cudaStreamSynchronize(be_.compute()); }  // the search ran on it; release afterwards
  void* workspace(size_t bytes) {
    if (bytes > 0 && (!ws || ws->bytes() < bytes)) {
      ws.reset();
      ws = be_.alloc_bytes(bytes, "convolution search workspace");
    }
    return ws ? ws->data() : nullptr;
  }
  std::shared_ptr<Buffer> zeroed(size_t bytes, const char* what) {
    auto b = be_.alloc_bytes(bytes, what);
    CUDA_CHECK(cudaMemsetAsync(b->data(), 0, b->bytes(), be_.compute()));
    return b;
  }
  CudaBackend& be_;
  std::shared_ptr<Buffer> x, y, w, ws;
};

void choose_forward(CudaBackend& be, ConvPlan& p, SearchBuffers* search) {
  const cudnnHandle_t h = be.cudnn();
  const size_t limit = be.options().workspace_bytes;
  int max = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(static_cast<size_t>(std::max(max, 1)));
  int got = 0;
  CUDNN_CHECK(
      cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), p.w.get(), p.fwd.get(), p.y.get(), max, &got, perfs.data()));
  if (search) {
    const size_t ws_bytes = search_workspace(perfs, got, limit);
    void* ws = search->workspace(ws_bytes);
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, p.x.get(), search->x->data(), p.w.get(), search->w->data(),
                                                       p.fwd.get(), p.y.get(), search->y->data(), max, &got,
                                                       perfs.data(), ws, ws_bytes));
  }
  auto ws_of = [&](cudnnConvolutionFwdAlgo_t a, size_t* n) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, p.x.get(), p.w.get(), p.fwd.get(), p.y.get(), a, n);
  };
  std::string why;
  if (!choose(perfs, got, p.fwd, be, ws_of, &p.fwd_algo, &p.fwd_ws, &why)) no_algorithm("forward", p, limit, why);
}

void choose_backward_data(CudaBackend& be, ConvPlan& p, SearchBuffers* search) {
  const cudnnHandle_t h = be.cudnn();
  const size_t limit = be.options().workspace_bytes;
  int max = 0;
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(static_cast<size_t>(std::max(max, 1)));
  int got = 0;
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w.get(), p.y.get(), p.bwd_data.get(), p.x.get(), max,
                                                          &got, perfs.data()));
  if (search) {
    const size_t ws_bytes = search_workspace(perfs, got, limit);
    void* ws = search->workspace(ws_bytes);
    CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w.get(), search->w->data(), p.y.get(),
                                                            search->y->data(), p.bwd_data.get(), p.x.get(),
                                                            search->x->data(), max, &got, perfs.data(), ws, ws_bytes));
  }
  auto ws_of = [&](cudnnConvolutionBwdDataAlgo_t a, size_t* n) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w.get(), p.y.get(), p.bwd_data.get(), p.x.get(), a, n);
  };
  std::string why;
  if (!choose(perfs, got, p.bwd_data, be, ws_of, &p.bwd_data_algo, &p.bwd_data_ws, &why))
    no_algorithm("backward-data", p, limit, why);
  p.has_bwd_data = true;
}

void choose_backward_filter(CudaBackend& be, ConvPlan& p, SearchBuffers* search) {
  const cudnnHandle_t h = be.cudnn();
  const size_t limit = be.options().workspace_bytes;
  int max = 0;
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(static_cast<size_t>(std::max(max, 1)));
  int got = 0;
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x.get(), p.y.get(), p.bwd_filter.get(), p.w.get(), max,
                                                            &got, perfs.data()));
  if (search) {
    const size_t ws_bytes = search_workspace(perfs, got, limit);
    void* ws = search->workspace(ws_bytes);
    CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        h, p.x.get(), search->x->data(), p.y.get(), search->y->data(), p.bwd_filter.get(), p.w.get(), search->w->data(),
        max, &got, perfs.data(), ws, ws_bytes));
  }
  auto ws_of = [&](cudnnConvolutionBwdFilterAlgo_t a, size_t* n) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x.get(), p.y.get(), p.bwd_filter.get(), p.w.get(), a, n);
  };
  std::string why;
  if (!choose(perfs, got, p.bwd_filter, be, ws_of, &p.bwd_filter_algo, &p.bwd_filter_ws, &why))
    no_algorithm("backward-filter", p, limit, why);
}

void check_output_dims(const ConvPlan& p) {
  int n = 0, c = 0, h = 0, w = 0;
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p.fwd.get(), p.x.get(), p.w.get(), &n, &c, &h, &w));
  const int64_t ho = ConvPlan::out_size(p.key.h_in, p.key), wo = ConvPlan::out_size(p.key.w_in, p.key);
  RN_CHECK(n == p.key.n && c == p.key.c_out && h == ho && w == wo,
           fmt::format("cuDNN's output of {} is {}x{}x{}x{}, expected {}x{}x{}x{}", describe(p.key), n, c, h, w,
                       p.key.n, p.key.c_out, ho, wo));
}

class CudaConv final : public ConvKernel {
 public:
  CudaConv(CudaBackend& be, std::shared_ptr<ConvPlan> plan, bool need_dx)
      : be_(be), p_(std::move(plan)), need_dx_(need_dx) {
    if (p_->w_copy) {
      const size_t bytes = static_cast<size_t>(p_->filter_numel()) * dtype_size(p_->key.dtype);
      w_copy_ = be.alloc_bytes(bytes, fmt::format("{} weights of a convolution", dtype_name(p_->key.dtype)));
      be.scratch().reserve(bytes);  // backward_weights' low-precision gradient
    }
    be.workspace().reserve(p_->max_workspace());
  }

  void forward(const Tensor& x, const Tensor& w, Tensor& y) override {
    check(x, true, "x");
    check(y, false, "y");
    const void* wp = weights(w, /*refresh=*/true);
    auto& ws = be_.workspace();
    CUDNN_CHECK(cudnnConvolutionForward(be_.cudnn(), &kOne, p_->x.get(), x.raw(), p_->w.get(), wp, p_->fwd.get(),
                                        p_->fwd_algo, ws.data(), ws.bytes(), &kZero, p_->y.get(), y.raw()));
  }

  void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) override {
    RN_CHECK(need_dx_ && p_->has_bwd_data, "backward_data on a convolution made without need_dx: " + describe(p_->key));
    check(dy, false, "dy");
    check(dx, true, "dx");
    // The copy converted by this step's forward (the weights have not changed since).
    const void* wp = weights(w, /*refresh=*/false);
    auto& ws = be_.workspace();
    CUDNN_CHECK(cudnnConvolutionBackwardData(be_.cudnn(), &kOne, p_->w.get(), wp, p_->y.get(), dy.raw(),
                                             p_->bwd_data.get(), p_->bwd_data_algo, ws.data(), ws.bytes(), &kZero,
                                             p_->x.get(), dx.raw()));
  }

  void backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw) override {
    check(x, true, "x");
    check(dy, false, "dy");
    check_weights(dw);
    void* target = p_->w_copy ? be_.scratch().data() : dw.raw();
    auto& ws = be_.workspace();
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(be_.cudnn(), &kOne, p_->x.get(), x.raw(), p_->y.get(), dy.raw(),
                                               p_->bwd_filter.get(), p_->bwd_filter_algo, ws.data(), ws.bytes(), &kZero,
                                               p_->w.get(), target));
    if (p_->w_copy)
      convert(target, p_->w_layout, p_->key.dtype, dw.raw(), Layout::kNCHW, DType::kF32, filter_dims(), be_.compute());
  }

 private:
  Dims4 filter_dims() const { return Dims4{p_->key.c_out, p_->key.c_in, p_->key.kernel, p_->key.kernel}; }

  // An input-side (x, dx) or output-side (y, dy) tensor of this geometry.
  void check(const Tensor& t, bool input_side, const char* what) const {
    const ConvKey& k = p_->key;
    const Shape s = input_side ? Shape{k.n, k.c_in, k.h_in, k.w_in}
                               : Shape{k.n, k.c_out, ConvPlan::out_size(k.h_in, k), ConvPlan::out_size(k.w_in, k)};
    const Layout l = input_side ? k.x : k.y;
    RN_CHECK(t.shape() == s && t.layout() == l && t.dtype() == k.dtype,
             fmt::format("convolution {}: {} is {} {} {}", describe(k), what, t.shape().str(), layout_name(t.layout()),
                         dtype_name(t.dtype())));
  }

  void check_weights(const Tensor& w) const {
    RN_CHECK(w.numel() == p_->filter_numel() && w.dtype() == DType::kF32,
             "convolution " + describe(p_->key) + ": weights " + w.shape().str());
  }

  // The filter cuDNN reads: the fp32 OIHW parameters themselves, or this
  // kernel's converted copy (refreshed when asked, or when it was made from other weights).
  const void* weights(const Tensor& w, bool refresh) {
    check_weights(w);
    if (!p_->w_copy) return w.raw();
    if (refresh || converted_from_ != w.raw()) {
      convert(w.raw(), Layout::kNCHW, DType::kF32, w_copy_->data(), p_->w_layout, p_->key.dtype, filter_dims(),
              be_.compute());
      converted_from_ = w.raw();
    }
    return w_copy_->data();
  }

  CudaBackend& be_;
  std::shared_ptr<ConvPlan> p_;
  bool need_dx_;
  std::shared_ptr<Buffer> w_copy_;
  const void* converted_from_ = nullptr;
};

}  // namespace
}  // namespace cuda

std::shared_ptr<cuda::ConvPlan> CudaBackend::conv_plan(const cuda::ConvKey& k, bool need_dx) {
  auto it = conv_plans_.find(k);
  std::shared_ptr<cuda::ConvPlan> p;
  if (it != conv_plans_.end()) {
    p = it->second;
  } else {
    p = std::make_shared<cuda::ConvPlan>(k, reference_math() ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH);
    cuda::check_output_dims(*p);
  }
  const bool search = opt_.conv_algo == "find";
  const bool new_plan = it == conv_plans_.end();
  if (new_plan || (need_dx && !p->has_bwd_data)) {
    std::optional<cuda::SearchBuffers> buffers;
    if (search) buffers.emplace(*this, *p);
    cuda::SearchBuffers* sb = buffers ? &*buffers : nullptr;
    if (new_plan) {
      cuda::choose_forward(*this, *p, sb);
      cuda::choose_backward_filter(*this, *p, sb);
    }
    if (need_dx && !p->has_bwd_data) cuda::choose_backward_data(*this, *p, sb);
  }
  if (new_plan) conv_plans_.emplace(k, p);  // only once every search succeeded
  return p;
}

std::unique_ptr<ConvKernel> CudaBackend::make_conv(const ConvGeom& g, Layout x, Layout y, bool need_dx) {
  RN_CHECK(g.c_in > 0 && g.c_out > 0 && g.kernel > 0 && g.stride > 0 && g.h_out() > 0 && g.w_out() > 0,
           "convolution geometry " + std::to_string(g.kernel) + "/" + std::to_string(g.stride));
  const cuda::ConvKey k{g.n, g.c_in, g.h_in, g.w_in, g.c_out, g.kernel, g.stride, g.pad, x, y, precision_};
  return std::make_unique<cuda::CudaConv>(*this, conv_plan(k, need_dx), need_dx);
}

}  // namespace rn
