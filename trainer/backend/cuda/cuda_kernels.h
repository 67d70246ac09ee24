// The CUDA backend's own kernels (everything cuDNN and cuBLAS do not do).
//
// Pointers are device memory; `void*` data have the DType passed with them
// (fp32, bf16 or fp16; arithmetic is fp32, results rounded once to nearest).
// Parameters, statistics and gradients of parameters are fp32. 4-D tensors
// are [n, c, h, w] logically, stored in Layout::kNCHW or Layout::kNHWC.
// Every call is asynchronous on stream s and checks the launch
// (CUDA_CHECK_LAUNCH). Counts are elements.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "trainer/core/tensor.h"

namespace rn::cuda {

struct Dims4 {
  int64_t n, c, h, w;
  int64_t numel() const { return n * c * h * w; }
};

// --- elementwise ---
void fill(void* p, DType t, int64_t n, float value, cudaStream_t s);
// y = a * y + b * x (fp32)
void axpby(float a, float* y, float b, const float* x, int64_t n, cudaStream_t s);
// out = a + b (out may alias a or b)
void add(const void* a, const void* b, void* out, DType t, int64_t n, cudaStream_t s);
void relu_forward(const void* x, void* y, DType t, int64_t n, cudaStream_t s);
// dx = y > 0 ? dy : 0 (y: the forward output)
void relu_backward(const void* y, const void* dy, void* dx, DType t, int64_t n, cudaStream_t s);

// --- layout and dtype conversion ---
// dst = src with another layout and/or dtype (kNC counts as kNCHW with
// h = w = 1). Also converts conv weights: OIHW fp32 -> OHWI bf16 is
// NCHW -> NHWC with n = O, c = I.
void convert(const void* src, Layout src_layout, DType src_t, void* dst, Layout dst_layout, DType dst_t, Dims4 d,
             cudaStream_t s);

// --- shortcut option A ---
// y[:, :x.c] = x[:, :, ::stride, ::stride], y[:, x.c:] = 0. x and y share
// layout and dtype; y is {x.n, y_c, ceil(x.h / stride), ceil(x.w / stride)}.
void shortcut_pad_forward(const void* x, Dims4 xd, void* y, Dims4 yd, Layout l, DType t, int64_t stride,
                          cudaStream_t s);
// dx = the strided channels of dy (dx fully written).
void shortcut_pad_backward(const void* dy, Dims4 yd, void* dx, Dims4 xd, Layout l, DType t, int64_t stride,
                           cudaStream_t s);

// --- global average pool ---
// y[n, c] (fp32) = mean over h, w of x (layout l, dtype t).
void global_avg_pool_forward(const void* x, Dims4 d, Layout l, DType t, float* y, cudaStream_t s);
// dx[n, c, h, w] = dy[n, c] / (h * w).
void global_avg_pool_backward(const float* dy, Dims4 d, Layout l, DType t, void* dx, cudaStream_t s);

// --- batch norm with given statistics (eval, frozen BN) ---
// y = tail(gamma * (x - mean) / sqrt(var + eps) + beta [+ z]); relu: apply
// max(0, .) after the optional add. z may be null.
void bn_stats_forward(const void* x, const void* z, void* y, Dims4 d, Layout l, DType t, const float* gamma,
                      const float* beta, const float* mean, const float* var, float eps, bool relu, cudaStream_t s);
// The exact gradient of bn_stats_forward with mean/var constant:
//   g = relu ? (y > 0 ? dy : 0) : dy;  dz = g (if dz);  dbeta = sum g;
//   dgamma = sum g * xhat;  dx = g * gamma / sqrt(var + eps).
// dgamma/dbeta are overwritten (sums in fp32 over n, h, w per channel).
void bn_stats_backward(const void* x, const void* y, const void* dy, Dims4 d, Layout l, DType t, const float* gamma,
                       const float* mean, const float* var, float eps, bool relu, void* dx, void* dz, float* dgamma,
                       float* dbeta, cudaStream_t s);

// --- loss ---
// Device result of softmax_cross_entropy, read back by the backend.
struct XentResult {
  double loss;        // sum over counted samples
  long long correct;  // top-1 hits
  long long counted;  // labels >= 0
};
// logits, dlogits fp32 [n, k]; labels int32 [n] (< 0: skipped sample, zero
// gradient). Writes dlogits = loss_scale * d(mean loss)/d(logits) with
// label smoothing as the CPU backend, and *result. Deterministic: one block,
// one warp per sample, sums in a fixed order. Labels must already be checked
// (< k) on the host: a kernel cannot throw, and treats a label >= k as skipped.
void softmax_cross_entropy(const float* logits, const int32_t* labels, int64_t n, int64_t k, float smoothing,
                           float loss_scale, float* dlogits, XentResult* result, cudaStream_t s);

// --- optimizer ---
// PyTorch SGD on grad_scale * g: g' = grad_scale * g + wd * p; v = mu * v + g';
// p -= lr * (nesterov ? g' + mu * v : v). One launch over a flat range of
// many parameters (the ParamStore keeps them contiguous): the multi-tensor update.
void sgd_step(float* p, const float* g, float* v, int64_t n, float lr, float momentum, float weight_decay,
              bool nesterov, float grad_scale, cudaStream_t s);
// *bad = number of non-finite elements of x (*bad is zeroed first, on s).
void count_nonfinite(const float* x, int64_t n, unsigned int* bad, cudaStream_t s);

}  // namespace rn::cuda
