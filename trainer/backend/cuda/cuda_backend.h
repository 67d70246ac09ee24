// The CUDA backend: cuDNN convolutions, batch norm and pooling, cuBLAS for
// the fully connected layer, the own kernels of cuda_kernels.h for the rest.
//
// Precision (BackendOptions::precision):
//  - fp32: the reference mode. Activations fp32 NCHW, cuDNN restricted to
//    FMA math (no TF32 tensor cores), cuBLAS default math: results match the
//    CPU backend to about 1e-4 relative.
//  - bf16 / fp16: mixed precision. Activations NHWC in bf16/fp16, cuDNN
//    tensor-op math with fp32 accumulation. Weights stay fp32 OIHW in the
//    parameter buffers (master weights); each convolution keeps its own
//    low-precision OHWI copy, refreshed in every forward. BN parameters and
//    statistics, logits and the optimizer state are fp32.
//
// Streams: every kernel runs on one compute stream (stream()); from_host
// and the upload ring copy on a copy stream ordered against it with events
// (a ring's upload overlaps the step before). Nothing synchronizes the
// whole device; synchronize() waits for the compute stream.
//
// Memory: see cuda_memory.h (allocation only while layers build their
// per-shape plans, i.e. in the first step; one grow-only convolution
// workspace arena).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "trainer/backend/backend.h"
#include "trainer/backend/cuda/cuda_device.h"
#include "trainer/backend/cuda/cuda_memory.h"

namespace rn {
namespace cuda {

// The fully connected layer on cuBLAS (fp32), on stream s (cuda_linear.cpp).
std::unique_ptr<LinearKernel> make_cuda_linear(cublasHandle_t h, cudaStream_t s, int64_t n, int64_t in, int64_t out);

// What a convolution algorithm choice depends on: identical layers (the
// blocks of a stage) share one search.
struct ConvKey {
  int64_t n, c_in, h_in, w_in, c_out, kernel, stride, pad;
  Layout x, y;
  DType dtype;
  bool operator<(const ConvKey& o) const {
    auto t = [](const ConvKey& k) {
      return std::tie(k.n, k.c_in, k.h_in, k.w_in, k.c_out, k.kernel, k.stride, k.pad, k.x, k.y, k.dtype);
    };
    return t(*this) < t(o);
  }
};
struct ConvPlan;  // descriptors and chosen algorithms (cuda_conv.cpp)

}  // namespace cuda

class CudaBackend final : public Backend {
 public:
  // `facts` from cuda::open_device, which made the device current.
  CudaBackend(const BackendOptions& o, cuda::DeviceFacts facts);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda-cudnn"; }

  Tensor allocate(const Shape& shape, Layout layout, DType dtype = DType::kF32) override;
  Layout activation_layout(int64_t channels) const override;
  DType activation_dtype() const override { return precision_; }

  std::unique_ptr<ConvKernel> make_conv(const ConvGeom& g, Layout x, Layout y, bool need_dx) override;
  // Every tail in every mode: fused by cuDNN where it can, else emulated
  // (cuda_batchnorm.cpp).
  std::unique_ptr<BatchNormKernel> make_batchnorm(const Shape& s, Layout l, DType dtype, float eps, BnTail tail,
                                                  bool global_stats = false) override;
  std::unique_ptr<PoolKernel> make_pool(const PoolGeom& g, Layout x, Layout y) override;
  std::unique_ptr<LinearKernel> make_linear(int64_t n, int64_t in, int64_t out) override;

  void fill(Tensor& t, float value) override;
  void axpby(float a, Tensor& y, float b, const Tensor& x) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void shortcut_pad_forward(const Tensor& x, Tensor& y, int64_t stride) override;
  void shortcut_pad_backward(const Tensor& dy, Tensor& dx, int64_t stride) override;
  // Queues the labels' upload, the kernel and the copy of its result to
  // pinned memory, and records loss_done; loss_result() waits for that event.
  void softmax_cross_entropy(const Tensor& logits, const int32_t* labels, float smoothing, Tensor& dlogits,
                             float loss_scale = 1.f) override;
  LossResult loss_result() override;
  void sgd_step(Tensor& param, const Tensor& grad, Tensor& velocity, float lr, float momentum, float weight_decay,
                bool nesterov, float grad_scale = 1.f) override;
  bool all_finite(const Tensor& t) override;
  // Waits for the compute stream (the host array is written when it returns).
  void to_host(const Tensor& t, float* host) override;
  // Uploads on the copy stream; later kernels on the compute stream wait for
  // it (an event), and it waits for the kernels queued before it. Pageable
  // `host` memory is consumed before the call returns; memory pinned with
  // pin_host_memory is read asynchronously (see there).
  void from_host(const float* host, Tensor& t) override;
  // Two tensors in turn: see CudaUploadRing in cuda_backend.cpp.
  std::unique_ptr<UploadRing> make_upload_ring(const Shape& s) override;
  void synchronize() override;

  int device() const override { return facts_.ordinal; }
  void* stream() const override { return rt_.compute; }
  std::string describe() const override;
  size_t peak_memory_bytes() const override { return account_->peak.load(); }
  size_t device_allocations() const override { return account_->allocations.load(); }

  // cudaHostRegister; the handle's release calls cudaHostUnregister (it
  // needs the device's primary context, not this backend).
  std::shared_ptr<void> pin_host_memory(void* p, size_t bytes) override;

  // --- for the kernels in this folder ---
  cudnnHandle_t cudnn() const { return rt_.cudnn; }
  cudaStream_t compute() const { return rt_.compute; }
  // fp32 reference mode: no tensor-core math anywhere.
  bool reference_math() const { return precision_ == DType::kF32; }
  // The one workspace arena of convolutions and batch norm (grown when a
  // kernel object is created; its contents live for one call).
  cuda::GrowBuffer& workspace() { return workspace_; }
  // Transient scratch besides the workspace (layout staging, low-precision
  // weight gradients, ReLU-masked gradients); contents live for one call.
  cuda::GrowBuffer& scratch() { return scratch_; }
  // Device memory a kernel object owns (counted in peak_memory_bytes()).
  std::shared_ptr<Buffer> alloc_bytes(size_t bytes, const std::string& what);
  const BackendOptions& options() const { return opt_; }
  // The convolution plan for k, searched once and cached (cuda_conv.cpp);
  // with need_dx it has the backward-data algorithm too.
  std::shared_ptr<cuda::ConvPlan> conv_plan(const cuda::ConvKey& k, bool need_dx);
  // Prints `text` to stderr the first time `key` is seen (one line per cause).
  void note_once(const std::string& key, const std::string& text);
  // from_host's copy, started once `ready` (an event on the compute stream;
  // nullptr: at once) has happened instead of after every queued kernel.
  void upload_after(cudaEvent_t ready, const float* host, Tensor& t);
  // Blocks until every queued host-to-device copy is done (their host
  // arrays may be reused).
  void wait_for_copies();

 private:
  // CUDA, cuDNN and cuBLAS objects; destroyed after every buffer member.
  struct Runtime {
    Runtime();
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;
    void destroy() noexcept;
    cudaStream_t compute = nullptr, copy = nullptr;
    cudaEvent_t compute_mark = nullptr, copy_done = nullptr, loss_done = nullptr;
    cudnnHandle_t cudnn = nullptr;
    cublasHandle_t cublas = nullptr;
  };
  bool is_pinned(const void* host, size_t bytes) const;

  BackendOptions opt_;
  DType precision_;
  cuda::DeviceFacts facts_;
  std::shared_ptr<cuda::MemoryAccount> account_;
  Runtime rt_;
  cuda::GrowBuffer workspace_, scratch_, labels_;
  // Pinned staging: the loss result and the non-finite count at offset 0,
  // labels from kPinnedLabels on.
  cuda::PinnedBuffer pinned_;
  std::shared_ptr<Buffer> results_;  // device: XentResult at 0, the non-finite count at kCountOffset
  bool loss_queued_ = false;         // the last loss's result is in pinned_, or on its way (loss_done)
  std::map<cuda::ConvKey, std::shared_ptr<cuda::ConvPlan>> conv_plans_;
  std::set<std::string> notes_;
};

}  // namespace rn
