// The backend interface: where tensors live and how each op is computed.
//
// Layers (trainer/nn) own parameters, shapes and the order of calls; a
// backend owns memory and kernels. A kernel object is created once per layer
// and input shape (it caches the library's primitives and any layout
// conversion buffers), so the steady-state step allocates nothing.
//
// All tensors passed to a backend were allocated by that backend. Parameters,
// gradients, BN statistics, logits and the optimizer state are fp32;
// activations have the backend's activation_dtype() (fp32 on the CPU; bf16 or
// fp16 in the GPU backend's mixed precision). Every kernel call is
// asynchronous with respect to the host on backends that have a stream;
// `synchronize()` waits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "trainer/core/tensor.h"

namespace rn {

struct ConvGeom {
  int64_t n, c_in, h_in, w_in;
  int64_t c_out, kernel, stride, pad;
  int64_t h_out() const { return (h_in + 2 * pad - kernel) / stride + 1; }
  int64_t w_out() const { return (w_in + 2 * pad - kernel) / stride + 1; }
};

enum class PoolKind { kMax, kAvg };
struct PoolGeom {
  int64_t n, c, h_in, w_in;
  int64_t kernel_h, kernel_w, stride, pad;
  PoolKind kind;
  int64_t h_out() const { return (h_in + 2 * pad - kernel_h) / stride + 1; }
  int64_t w_out() const { return (w_in + 2 * pad - kernel_w) / stride + 1; }
};

// y = conv(x, w); weights are OIHW (PyTorch order) in the caller's buffers.
class ConvKernel {
 public:
  virtual ~ConvKernel() = default;
  virtual void forward(const Tensor& x, const Tensor& w, Tensor& y) = 0;
  virtual void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) = 0;
  // Overwrites dw (OIHW).
  virtual void backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw) = 0;
};

// What a batch-norm kernel computes after normalising:
//   kNone     y = bn(x)
//   kRelu     y = relu(bn(x))
//   kAddRelu  y = relu(bn(x) + z): a residual block's tail in one kernel
enum class BnTail { kNone, kRelu, kAddRelu };

// Batch normalisation over N,H,W per channel, with its tail (BnTail) fused.
// mean/var are the biased batch statistics of the last training forward.
// z (the residual input) and dz (its gradient) are used with kAddRelu only,
// and have x's shape, layout and dtype.
//
// A kernel made with global_stats (Backend::make_batchnorm) normalises with
// given statistics in training too ("frozen" BN): forward_training then
// reads mean/var as inputs (e.g. the running statistics) and does not write
// them, and backward treats them as constants, so dx, dgamma and dbeta are
// the exact gradient of y = gamma * (x - mean) / sqrt(var + eps) + beta
// (followed by the ReLU when fused) with mean/var fixed.
class BatchNormKernel {
 public:
  virtual ~BatchNormKernel() = default;
  // Without global_stats: writes the batch statistics into mean/var. With
  // global_stats: reads mean/var (they are not modified).
  virtual void forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y, Tensor& mean,
                                Tensor& var, const Tensor* z = nullptr) = 0;
  virtual void forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                                 const Tensor& var, Tensor& y, const Tensor* z = nullptr) = 0;
  // Uses the statistics (and ReLU mask) of the last forward_training: pass
  // the mean/var that forward_training wrote (or, with global_stats, read).
  virtual void backward(const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                        const Tensor& var, Tensor& dx, Tensor& dgamma, Tensor& dbeta, Tensor* dz = nullptr) = 0;
};

class PoolKernel {
 public:
  virtual ~PoolKernel() = default;
  // training=true keeps what backward needs (the arg-max for max pooling).
  virtual void forward(const Tensor& x, Tensor& y, bool training) = 0;
  virtual void backward(const Tensor& dy, Tensor& dx) = 0;
};

// y[n, o] = sum_i x[n, i] * w[o, i] + b[o]; w is (out, in) as in PyTorch.
class LinearKernel {
 public:
  virtual ~LinearKernel() = default;
  virtual void forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) = 0;
  virtual void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) = 0;
  virtual void backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db) = 0;
};

// Device tensors that input batches are uploaded into
// (Backend::make_upload_ring), so that the upload of the next batch can run
// while the device still works on the current one. Owns its tensors.
//
// A short batch (the last one of an evaluation or inference pass) is
// uploaded padded with zero images to the ring's batch size: a new batch
// size would make every layer build, and keep, a second plan (on a GPU its
// output buffers, gigabytes for an ImageNet ResNet, and another convolution
// search). Eval mode treats every image on its own (batch norm with its
// running statistics), so the padding changes no real image's logits, which
// are the first rows.
class UploadRing {
 public:
  virtual ~UploadRing() = default;
  // Copies `images` images from `host` (plain NCHW floats, read as
  // Backend::from_host reads them; 0 <= images <= the ring's first
  // dimension) into the first rows of the ring's next tensor, zeros the rows
  // after them, and returns that tensor. Kernels queued before the next
  // upload() call may read it; the call after that overwrites it (once
  // those kernels are done).
  virtual const Tensor& upload(const float* host, int64_t images) = 0;
  // Blocks until every earlier upload() has finished reading its host
  // array, which may then be reused (a loader hands a batch's memory back
  // on its next fetch). Rings whose upload() copies synchronously: no-op.
  virtual void wait_for_host_reads() {}
};

// The first `rows` images of an fp32 NCHW batch tensor and the images after
// them, as views; an empty Tensor for a part with no image. Throws
// InternalError unless 0 <= rows <= the batch size. For UploadRing
// implementations.
std::pair<Tensor, Tensor> split_rows(const Tensor& batch, int64_t rows);

struct LossResult {
  double loss = 0;      // mean over the counted samples (0 when none)
  int64_t correct = 0;  // top-1 hits
  int64_t counted = 0;  // samples with a label >= 0 (the loader marks skipped corrupt images -1)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Uninitialised storage for `shape` in `layout` with elements of `dtype`.
  virtual Tensor allocate(const Shape& shape, Layout layout, DType dtype = DType::kF32) = 0;
  // The layout activations with `channels` channels should stay in between
  // layers (blocked on AVX-512/AVX2 CPUs, NHWC on GPUs, so no per-op reorders).
  virtual Layout activation_layout(int64_t channels) const = 0;
  // The element type of activations between layers (convolution outputs and
  // everything computed from them up to the global pool).
  virtual DType activation_dtype() const { return DType::kF32; }

  virtual std::unique_ptr<ConvKernel> make_conv(const ConvGeom& g, Layout x, Layout y, bool need_dx) = 0;
  // s/l/dtype: of x. global_stats: forward_training and backward use the
  // mean/var passed in (see BatchNormKernel) instead of batch statistics.
  virtual std::unique_ptr<BatchNormKernel> make_batchnorm(const Shape& s, Layout l, DType dtype, float eps, BnTail tail,
                                                          bool global_stats = false) = 0;
  virtual std::unique_ptr<PoolKernel> make_pool(const PoolGeom& g, Layout x, Layout y) = 0;
  virtual std::unique_ptr<LinearKernel> make_linear(int64_t n, int64_t in, int64_t out) = 0;

  // Elementwise helpers over equal-shape, equal-layout tensors.
  virtual void fill(Tensor& t, float value) = 0;
  // y = a * y + b * x  (y may be x)
  virtual void axpby(float a, Tensor& y, float b, const Tensor& x) = 0;
  // out = a + b  (out may alias a or b)
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // Copies with layout and dtype conversion; shapes must match.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;

  // Shortcut option A: y[:, :Cx] = x[:, :, ::s, ::s], y[:, Cx:] = 0.
  virtual void shortcut_pad_forward(const Tensor& x, Tensor& y, int64_t stride) = 0;
  virtual void shortcut_pad_backward(const Tensor& dy, Tensor& dx, int64_t stride) = 0;

  // Softmax cross-entropy with label smoothing eps: target is
  // (1-eps) on the label plus eps/K on every class. labels: host int32 array
  // of length N, read before the call returns; a label < 0 marks a skipped
  // sample (no loss, zero gradient, not in the mean). Writes loss_scale *
  // d(mean loss)/d(logits) into dlogits (loss_scale > 1: fp16 loss scaling;
  // the loss itself is unscaled). Queued like a kernel: the loss, top-1
  // hits and count come from loss_result(), so that a trainer can queue the
  // backward pass before it waits for them.
  virtual void softmax_cross_entropy(const Tensor& logits, const int32_t* labels, float smoothing, Tensor& dlogits,
                                     float loss_scale = 1.f) = 0;
  // The result of the last softmax_cross_entropy call. Waits for that loss
  // only, not for work queued after it; throws if there was no call.
  virtual LossResult loss_result() = 0;

  // SGD with momentum over a flat range (PyTorch's formulation), on the
  // gradient times grad_scale (1 / loss scale):
  //   g = grad_scale * grad + wd * p;  v = mu * v + g;
  //   p -= lr * (nesterov ? g + mu * v : v)
  virtual void sgd_step(Tensor& param, const Tensor& grad, Tensor& velocity, float lr, float momentum,
                        float weight_decay, bool nesterov, float grad_scale = 1.f) = 0;
  // Whether every element of an fp32 tensor is finite (a loss-scaled
  // gradient that overflowed is not). Waits for the kernels before it.
  virtual bool all_finite(const Tensor& t) = 0;

  // Plain NCHW (or NC) host float arrays <-> tensors of any layout.
  virtual void to_host(const Tensor& t, float* host) = 0;
  // The tensor's memory as a plain host array when it already is one (a
  // plain-layout tensor of a host backend), else nullptr: lets a reader such
  // as the checkpoint writer skip to_host's copy. Valid while t is.
  virtual const float* host_view(const Tensor& t) { return nullptr; }
  virtual void from_host(const float* host, Tensor& t) = 0;
  // Fp32 NCHW tensors of shape s for a stream of input batches (see
  // UploadRing). Host backends: one tensor, filled by from_host; the CUDA
  // backend alternates two, so an upload waits only for the step before last.
  virtual std::unique_ptr<UploadRing> make_upload_ring(const Shape& s);
  virtual void synchronize() = 0;
  // Page-locks [p, p + bytes), which from_host will read again and again
  // (the loader's batch buffers), so that uploads from it are asynchronous
  // DMA; unpinned when the last copy of the handle goes (the memory must
  // outlive it). While an upload from it may be queued, its contents must
  // not change: until UploadRing::wait_for_host_reads or the next
  // synchronize(), to_host or all_finite. Host
  // backends: nothing to do, returns null.
  virtual std::shared_ptr<void> pin_host_memory(void* p, size_t bytes) { return nullptr; }

  // --- device facts (host backends keep the defaults) ---
  // CUDA device ordinal of this backend's memory, or -1 for host memory.
  virtual int device() const { return -1; }
  // The stream every kernel runs on (a cudaStream_t), or nullptr.
  virtual void* stream() const { return nullptr; }
  // One line for the run log: the device, its memory, library versions.
  virtual std::string describe() const { return name(); }
  // Most bytes of device memory this backend held at once (0 for host
  // backends).
  virtual size_t peak_memory_bytes() const { return 0; }
  // Device (and page-locked staging) allocations made so far: constant in
  // the steady-state step (tests/alloc checks it). 0 for host backends.
  virtual size_t device_allocations() const { return 0; }
};

// The oneDNN CPU backend (always available). threads <= 0 keeps OpenMP's default.
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);

// What resnet-train asks for (train.device, train.precision, gpu.*).
struct BackendOptions {
  std::string device = "cpu";                // "cpu" | "cuda"
  int threads = 0;                           // cpu: OpenMP threads (<= 0: OpenMP's default)
  int cuda_device = 0;                       // cuda: the ordinal among the visible devices
  DType precision = DType::kF32;             // cuda: activation dtype (fp32 = NCHW reference mode)
  std::string conv_algo = "heuristic";       // cuda: "heuristic" | "find" (timed once per shape)
  size_t workspace_bytes = size_t(1) << 30;  // cuda: largest convolution workspace
  bool deterministic = false;                // cuda: only deterministic convolution algorithms
};

// The backend for `o.device`. Throws UserError when it cannot be had: cuda
// in a build without the CUDA backend, no visible GPU, a cuDNN too old.
std::unique_ptr<Backend> make_backend(const BackendOptions& o);
// True when this build has the CUDA backend compiled in.
bool cuda_backend_compiled();

}  // namespace rn
