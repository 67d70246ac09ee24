// CudaBackend: device memory, streams, copies, the elementwise helpers, the
// loss and the optimizer; the factory make_cuda_backend. Convolution, batch
// norm and pooling kernels are in cuda_conv.cpp, cuda_batchnorm.cpp and
// cuda_pool.cpp; the fully connected layer in cuda_linear.cpp.
#include "trainer/backend/cuda/cuda_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "trainer/backend/cuda/cublas_api.h"
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_descriptors.h"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/backend/cuda/make_cuda_backend.h"

namespace rn {
namespace {

// Layout of the small result staging (pinned host and device alike).
constexpr size_t kCountOffset = 32;   // unsigned int non-finite count, after the XentResult
constexpr size_t kPinnedLabels = 64;  // labels (int32) in the pinned buffer
static_assert(sizeof(cuda::XentResult) <= kCountOffset, "XentResult outgrew its staging slot");

bool plain_fp32(const Tensor& t) {
  return t.dtype() == DType::kF32 && (t.layout() == Layout::kNCHW || t.layout() == Layout::kNC);
}

void check_same(const Tensor& a, const Tensor& b, const char* what) {
  RN_CHECK(a.numel() == b.numel() && a.layout() == b.layout() && a.dtype() == b.dtype(),
           fmt::format("{}: {} {} {} vs {} {} {}", what, a.shape().str(), layout_name(a.layout()),
                       dtype_name(a.dtype()), b.shape().str(), layout_name(b.layout()), dtype_name(b.dtype())));
}

void check_f32(const Tensor& t, const char* what) {
  RN_CHECK(t.dtype() == DType::kF32, fmt::format("{} takes fp32 tensors, got {}", what, dtype_name(t.dtype())));
}

}  // namespace

// --- construction ---

CudaBackend::Runtime::Runtime() {
  try {
    CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&compute_mark, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&copy_done, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&loss_done, cudaEventDisableTiming));
    CUDNN_CHECK(cudnnCreate(&cudnn));
    CUDNN_CHECK(cudnnSetStream(cudnn, compute));
    CUBLAS_CHECK(cuda::cublas().create(&cublas));
  } catch (...) {
    destroy();
    throw;
  }
}

CudaBackend::Runtime::~Runtime() { destroy(); }

void CudaBackend::Runtime::destroy() noexcept {
  // Teardown: nothing here may throw, and a failure has no one left to tell.
  if (compute) (void)cudaStreamSynchronize(compute);
  if (copy) (void)cudaStreamSynchronize(copy);
  if (cublas) (void)cuda::cublas().destroy(cublas);
  if (cudnn) (void)cudnnDestroy(cudnn);
  if (loss_done) (void)cudaEventDestroy(loss_done);
  if (copy_done) (void)cudaEventDestroy(copy_done);
  if (compute_mark) (void)cudaEventDestroy(compute_mark);
  if (copy) (void)cudaStreamDestroy(copy);
  if (compute) (void)cudaStreamDestroy(compute);
  cublas = nullptr;
  cudnn = nullptr;
  loss_done = copy_done = compute_mark = nullptr;
  copy = compute = nullptr;
}

CudaBackend::CudaBackend(const BackendOptions& o, cuda::DeviceFacts facts)
    : opt_(o),
      precision_(o.precision),
      facts_(std::move(facts)),
      account_(std::make_shared<cuda::MemoryAccount>()),
      rt_(),
      workspace_(account_, {rt_.compute}, "the convolution workspace"),
      scratch_(account_, {rt_.compute, rt_.copy}, "staging scratch"),
      labels_(account_, {rt_.compute}, "labels"),
      pinned_(account_) {
  account_->device = facts_.ordinal;
  account_->oom_hint = fmt::format(
      "Lower train.batch_size, or gpu.workspace_mb (the "
      "convolution workspace limit, now {} MiB).",
      opt_.workspace_bytes >> 20);
  // cuBLAS: fp32 math as written (no TF32) in every mode: the classifier is
  // fp32 and tiny. cuBLAS keeps its own workspace pool (allocated at the
  // first GEMM, not counted here): the linear kernel rebinds the stream per
  // call, which resets any workspace set with cublasSetWorkspace.
  CUBLAS_CHECK(cuda::cublas().set_stream(rt_.cublas, rt_.compute));
  CUBLAS_CHECK(cuda::cublas().set_math_mode(rt_.cublas, CUBLAS_DEFAULT_MATH));
  results_ = alloc_bytes(kPinnedLabels, "loss results");
  pinned_.reserve(kPinnedLabels + 4096);
}

CudaBackend::~CudaBackend() {
  (void)cudaStreamSynchronize(rt_.compute);  // buffers are freed below; no kernel may still use them
  (void)cudaStreamSynchronize(rt_.copy);
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& o) {
  // Before any CUDA call: the device check and cudaSetDevice (it creates the context).
  cuda::DeviceFacts facts = cuda::open_device(o.cuda_device);
  if (o.conv_algo != "heuristic" && o.conv_algo != "find")
    throw UserError("gpu.conv_algo = '" + o.conv_algo +
                    "' is not a convolution algorithm search; allowed: heuristic "
                    "(cuDNN's heuristics, instant), find (each distinct layer shape timed "
                    "once at start-up).");
  return std::make_unique<CudaBackend>(o, std::move(facts));
}

std::string CudaBackend::describe() const {
  const std::string mode = reference_math() ? "fp32 NCHW activations, FMA math (no TF32): the reference mode"
                                            : fmt::format("{} NHWC activations, tensor-core math, fp32 master weights",
                                                          dtype_name(precision_));
  return fmt::format("{}; {}; {}convolution algorithms by {}, workspace <= {} MiB", facts_.str(), mode,
                     opt_.deterministic ? "deterministic " : "", opt_.conv_algo, opt_.workspace_bytes >> 20);
}

void CudaBackend::note_once(const std::string& key, const std::string& text) {
  if (notes_.insert(key).second)
    std::fprintf(stderr, "resnet-train[rank %d]: note: %s\n", process_identity().rank, text.c_str());
}

// --- memory ---

std::shared_ptr<Buffer> CudaBackend::alloc_bytes(size_t bytes, const std::string& what) {
  return cuda::device_alloc(account_, bytes, what);
}

Tensor CudaBackend::allocate(const Shape& shape, Layout layout, DType dtype) {
  RN_CHECK(layout == Layout::kNCHW || layout == Layout::kNHWC || layout == Layout::kNC,
           std::string("the CUDA backend has no layout ") + layout_name(layout));
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  auto buf = alloc_bytes(bytes, fmt::format("a {} {} tensor {}", dtype_name(dtype), layout_name(layout), shape.str()));
  return Tensor(shape, layout, dtype, std::move(buf));
}

Layout CudaBackend::activation_layout(int64_t) const { return reference_math() ? Layout::kNCHW : Layout::kNHWC; }

std::shared_ptr<void> CudaBackend::pin_host_memory(void* p, size_t bytes) {
  if (p == nullptr || bytes == 0) return nullptr;
  const cudaError_t e = cudaHostRegister(p, bytes, cudaHostRegisterDefault);
  if (e == cudaErrorHostMemoryAlreadyRegistered) {
    (void)cudaGetLastError();  // page-locked by its owner, who also unpins it
    return nullptr;
  }
  if (e != cudaSuccess) {
    // e.g. a low `ulimit -l`: training still works, with synchronous uploads.
    (void)cudaGetLastError();
    note_once("pin", fmt::format("cannot page-lock {} MiB of batch memory ({}: "
                                 "{}); batch uploads stay synchronous",
                                 bytes >> 20, cudaGetErrorName(e), cudaGetErrorString(e)));
    return nullptr;
  }
  // Teardown: an unregister failure has no one left to tell.
  return std::shared_ptr<void>(p, [](void* q) { (void)cudaHostUnregister(q); });
}

bool CudaBackend::is_pinned(const void* host, size_t bytes) const {
  if (bytes == 0) return true;
  // Both ends: memory pinned by someone else (cudaHostRegister reported it
  // already registered) may be pinned over a part of the range only.
  for (const void* p : {host, static_cast<const void*>(static_cast<const char*>(host) + bytes - 1)}) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
      (void)cudaGetLastError();  // not a pointer CUDA knows: pageable
      return false;
    }
    if (a.type != cudaMemoryTypeHost) return false;
  }
  return true;
}

// --- kernels made here ---

std::unique_ptr<LinearKernel> CudaBackend::make_linear(int64_t n, int64_t in, int64_t out) {
  return cuda::make_cuda_linear(rt_.cublas, rt_.compute, n, in, out);
}

// --- elementwise ---

void CudaBackend::fill(Tensor& t, float value) { cuda::fill(t.raw(), t.dtype(), t.numel(), value, rt_.compute); }

void CudaBackend::axpby(float a, Tensor& y, float b, const Tensor& x) {
  check_f32(y, "axpby");
  check_same(y, x, "axpby");
  cuda::axpby(a, y.data(), b, x.data(), y.numel(), rt_.compute);
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  check_same(a, b, "add");
  check_same(a, out, "add");
  cuda::add(a.raw(), b.raw(), out.raw(), a.dtype(), a.numel(), rt_.compute);
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  RN_CHECK(src.shape() == dst.shape(), "copy " + src.shape().str() + " -> " + dst.shape().str());
  if (src.layout() == dst.layout() && src.dtype() == dst.dtype()) {
    if (src.raw() != dst.raw())
      CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.bytes(), cudaMemcpyDeviceToDevice, rt_.compute));
    return;
  }
  cuda::convert(src.raw(), src.layout(), src.dtype(), dst.raw(), dst.layout(), dst.dtype(), cuda::dims4(src.shape()),
                rt_.compute);
}

void CudaBackend::shortcut_pad_forward(const Tensor& x, Tensor& y, int64_t stride) {
  RN_CHECK(x.layout() == y.layout() && x.dtype() == y.dtype(), "shortcut pad: x and y differ in layout or dtype");
  cuda::shortcut_pad_forward(x.raw(), cuda::dims4(x.shape()), y.raw(), cuda::dims4(y.shape()), x.layout(), x.dtype(),
                             stride, rt_.compute);
}

void CudaBackend::shortcut_pad_backward(const Tensor& dy, Tensor& dx, int64_t stride) {
  RN_CHECK(dy.layout() == dx.layout() && dy.dtype() == dx.dtype(), "shortcut pad: dy and dx differ in layout or dtype");
  cuda::shortcut_pad_backward(dy.raw(), cuda::dims4(dy.shape()), dx.raw(), cuda::dims4(dx.shape()), dy.layout(),
                              dy.dtype(), stride, rt_.compute);
}

// --- loss and optimizer ---

void CudaBackend::softmax_cross_entropy(const Tensor& logits, const int32_t* labels, float smoothing, Tensor& dlogits,
                                        float loss_scale) {
  RN_CHECK(logits.shape().rank() == 2 && logits.shape() == dlogits.shape(), "loss shapes " + logits.shape().str());
  check_f32(logits, "softmax_cross_entropy");
  check_f32(dlogits, "softmax_cross_entropy");
  const int64_t n = logits.shape()[0], k = logits.shape()[1];
  // The previous loss's label upload and result copy use the same pinned
  // slots. A trainer has read that result already, so this does not wait.
  if (loss_queued_) CUDA_CHECK(cudaEventSynchronize(rt_.loss_done));
  loss_queued_ = false;
  const size_t label_bytes = static_cast<size_t>(n) * sizeof(int32_t);
  pinned_.reserve(kPinnedLabels + label_bytes);
  labels_.reserve(label_bytes);
  // Checked here as the CPU backend does (the kernel would skip silently).
  auto* staged = reinterpret_cast<int32_t*>(static_cast<char*>(pinned_.data()) + kPinnedLabels);
  for (int64_t i = 0; i < n; ++i) {
    RN_CHECK(labels[i] < k, "label " + std::to_string(labels[i]) + " outside [0, " + std::to_string(k) + ")");
    staged[i] = labels[i];
  }
  CUDA_CHECK(cudaMemcpyAsync(labels_.data(), staged, label_bytes, cudaMemcpyHostToDevice, rt_.compute));
  auto* result = static_cast<cuda::XentResult*>(results_->data());
  cuda::softmax_cross_entropy(logits.data(), static_cast<const int32_t*>(labels_.data()), n, k, smoothing, loss_scale,
                              dlogits.data(), result, rt_.compute);
  CUDA_CHECK(cudaMemcpyAsync(pinned_.data(), result, sizeof(cuda::XentResult), cudaMemcpyDeviceToHost, rt_.compute));
  CUDA_CHECK(cudaEventRecord(rt_.loss_done, rt_.compute));
  loss_queued_ = true;
}

LossResult CudaBackend::loss_result() {
  RN_CHECK(loss_queued_, "loss_result() without a softmax_cross_entropy that succeeded");
  CUDA_CHECK(cudaEventSynchronize(rt_.loss_done));
  const auto* host = static_cast<const cuda::XentResult*>(pinned_.data());
  LossResult r;
  r.correct = host->correct;
  r.counted = host->counted;
  r.loss = r.counted > 0 ? host->loss / double(r.counted) : 0.0;
  return r;
}

void CudaBackend::sgd_step(Tensor& param, const Tensor& grad, Tensor& velocity, float lr, float momentum,
                           float weight_decay, bool nesterov, float grad_scale) {
  check_f32(param, "sgd_step");
  RN_CHECK(param.numel() == grad.numel() && param.numel() == velocity.numel(), "sgd_step sizes differ");
  RN_CHECK(grad.dtype() == DType::kF32 && velocity.dtype() == DType::kF32, "sgd_step takes fp32 tensors");
  cuda::sgd_step(param.data(), grad.data(), velocity.data(), param.numel(), lr, momentum, weight_decay, nesterov,
                 grad_scale, rt_.compute);
}

bool CudaBackend::all_finite(const Tensor& t) {
  check_f32(t, "all_finite");
  auto* dev = reinterpret_cast<unsigned int*>(static_cast<char*>(results_->data()) + kCountOffset);
  auto* host = reinterpret_cast<unsigned int*>(static_cast<char*>(pinned_.data()) + kCountOffset);
  cuda::count_nonfinite(t.data(), t.numel(), dev, rt_.compute);
  CUDA_CHECK(cudaMemcpyAsync(host, dev, sizeof(unsigned int), cudaMemcpyDeviceToHost, rt_.compute));
  CUDA_CHECK(cudaStreamSynchronize(rt_.compute));
  return *host == 0;
}

// --- host transfers ---

void CudaBackend::to_host(const Tensor& t, float* host) {
  const void* src = t.raw();
  if (!plain_fp32(t)) {
    scratch_.reserve(static_cast<size_t>(t.numel()) * sizeof(float));
    cuda::convert(t.raw(), t.layout(), t.dtype(), scratch_.data(), Layout::kNCHW, DType::kF32, cuda::dims4(t.shape()),
                  rt_.compute);
    src = scratch_.data();
  }
  CUDA_CHECK(
      cudaMemcpyAsync(host, src, static_cast<size_t>(t.numel()) * sizeof(float), cudaMemcpyDeviceToHost, rt_.compute));
  CUDA_CHECK(cudaStreamSynchronize(rt_.compute));
}

void CudaBackend::from_host(const float* host, Tensor& t) {
  // The copy may overwrite what queued kernels still read (the previous
  // batch, the scratch): it waits for all of them.
  CUDA_CHECK(cudaEventRecord(rt_.compute_mark, rt_.compute));
  upload_after(rt_.compute_mark, host, t);
}

void CudaBackend::upload_after(cudaEvent_t ready, const float* host, Tensor& t) {
  const bool plain = plain_fp32(t);
  const size_t bytes = static_cast<size_t>(t.numel()) * sizeof(float);
  if (!plain) scratch_.reserve(bytes);
  void* dst = plain ? t.raw() : scratch_.data();
  // The copy starts once `ready` has happened; later kernels on the compute
  // stream wait for the copy.
  if (ready != nullptr) CUDA_CHECK(cudaStreamWaitEvent(rt_.copy, ready, 0));
  CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, rt_.copy));
  CUDA_CHECK(cudaEventRecord(rt_.copy_done, rt_.copy));
  CUDA_CHECK(cudaStreamWaitEvent(rt_.compute, rt_.copy_done, 0));
  if (!plain)
    cuda::convert(dst, Layout::kNCHW, DType::kF32, t.raw(), t.layout(), t.dtype(), cuda::dims4(t.shape()), rt_.compute);
  // A caller may reuse a pageable array as soon as this returns.
  if (!is_pinned(host, bytes)) CUDA_CHECK(cudaEventSynchronize(rt_.copy_done));
}

namespace {

// Two tensors used in turn. Upload k writes tensor k % 2 once the kernels
// queued before upload k - 1 are done: they include every reader of upload
// k - 2's batch (the step before last), so the copy overlaps the work still
// queued on batch k - 1.
class CudaUploadRing final : public UploadRing {
 public:
  CudaUploadRing(CudaBackend& be, const Shape& s) : be_(be) {
    try {
      for (int i = 0; i < 2; ++i) {
        slots_[i] = be.allocate(s, Layout::kNCHW);
        CUDA_CHECK(cudaEventCreateWithFlags(&released_[i], cudaEventDisableTiming));
      }
    } catch (...) {
      destroy_events();
      throw;
    }
  }
  ~CudaUploadRing() override {
    // Teardown: a copy may still be writing a slot that is freed next.
    (void)cudaStreamSynchronize(be_.compute());
    destroy_events();
  }
  CudaUploadRing(const CudaUploadRing&) = delete;
  CudaUploadRing& operator=(const CudaUploadRing&) = delete;

  const Tensor& upload(const float* host, int64_t images) override {
    const int slot = int(uploads_ % 2), other = 1 - slot;
    auto [head, tail] = split_rows(slots_[slot], images);
    // The other slot's readers are all queued by now (the contract).
    if (uploads_ > 0) CUDA_CHECK(cudaEventRecord(released_[other], be_.compute()));
    if (!head.empty()) be_.upload_after(uploads_ >= 2 ? released_[slot] : nullptr, host, head);
    // Zero padding on the compute stream, behind this slot's last readers.
    if (!tail.empty()) be_.fill(tail, 0.f);
    ++uploads_;
    return slots_[slot];
  }
  // Copies run in order on the copy stream: its last one done, all are.
  void wait_for_host_reads() override { be_.wait_for_copies(); }

 private:
  void destroy_events() noexcept {
    for (cudaEvent_t& e : released_) {
      if (e != nullptr) (void)cudaEventDestroy(e);
      e = nullptr;
    }
  }

  CudaBackend& be_;
  Tensor slots_[2];
  cudaEvent_t released_[2] = {nullptr, nullptr};
  int64_t uploads_ = 0;
};

}  // namespace

std::unique_ptr<UploadRing> CudaBackend::make_upload_ring(const Shape& s) {
  return std::make_unique<CudaUploadRing>(*this, s);
}

void CudaBackend::synchronize() { CUDA_CHECK(cudaStreamSynchronize(rt_.compute)); }

void CudaBackend::wait_for_copies() { CUDA_CHECK(cudaStreamSynchronize(rt_.copy)); }

}  // namespace rn
