// Naive double-precision reference implementations of the ResNet layers.
//
// These are the oracles the layer tests compare the fp32 oneDNN engine
// against: forward outputs directly, and backward passes via central finite
// differences of these functions (see finite_diff.h). They are written as
// plain loops for clarity, not speed; test shapes are tiny.
//
// Conventions:
//  * Tensors are std::vector<double>, dense, NCHW (4-D) or row-major [N, X]
//    (2-D). Shapes are passed as ints, in that order.
//  * Convolution is cross-correlation (no kernel flip), as in PyTorch and
//    oneDNN. Weights are [Co, Ci, K, K]; there is no bias.
//  * Output sizes use floor division: O = (I + 2*pad - K) / stride + 1
//    (PyTorch's ceil_mode = false).
//  * Every function checks its sizes and throws std::invalid_argument on a
//    mismatch, so a wrong shape in a test fails loudly instead of reading
//    out of bounds.
//
// Only the standard library is used; no engine headers.
#pragma once

#include <cstddef>
#include <vector>

namespace rn::ref {

using Vec = std::vector<double>;

// Flat NCHW offset of element (n, c, h, w) in a tensor with C, H, W.
inline std::size_t idx4(int n, int c, int h, int w, int C, int H, int W) {
  return ((static_cast<std::size_t>(n) * C + c) * H + h) * W + w;
}

// Output extent of a convolution / pooling window along one axis:
// (in + 2*pad - k) / stride + 1, floor division. Throws if in + 2*pad < k or
// stride < 1.
int conv_out_size(int in, int k, int stride, int pad);

// ---------------------------------------------------------------------------
// Convolution: x[N,Ci,H,W] (*) w[Co,Ci,K,K] -> y[N,Co,Ho,Wo]; no bias,
// zero padding. Ho = conv_out_size(H, K, stride, pad), same for Wo.
Vec conv2d_forward(const Vec& x, int N, int Ci, int H, int W, const Vec& w, int Co, int K, int stride, int pad);

// ---------------------------------------------------------------------------
// Batch normalisation, per channel over (N, H, W).
struct BnTrainResult {
  Vec y;             // [N,C,H,W]
  Vec mean;          // [C] batch mean
  Vec var;           // [C] biased batch variance (used for normalisation)
  Vec var_unbiased;  // [C] unbiased variance: var * m / (m - 1), m = N*H*W
};

// y = gamma * (x - mean) / sqrt(var + eps) + beta with batch statistics
// (biased variance), then max(y, 0) when relu is set. Requires N*H*W >= 2
// (PyTorch rejects a single value per channel in training).
BnTrainResult batchnorm_train_forward(const Vec& x, int N, int C, int H, int W, const Vec& gamma, const Vec& beta,
                                      double eps, bool relu = false);

// Same with the given running statistics in place of batch statistics.
Vec batchnorm_eval_forward(const Vec& x, int N, int C, int H, int W, const Vec& gamma, const Vec& beta,
                           const Vec& running_mean, const Vec& running_var, double eps, bool relu = false);

// PyTorch's running-statistics update after a training forward:
// running_mean = (1 - momentum) * running_mean + momentum * batch mean,
// running_var  = (1 - momentum) * running_var  + momentum * unbiased var.
void batchnorm_update_running(Vec& running_mean, Vec& running_var, const BnTrainResult& batch, double momentum);

// ---------------------------------------------------------------------------
// Elementwise max(x, 0), any shape.
Vec relu_forward(const Vec& x);

// Elementwise a + b (same size).
Vec add(const Vec& a, const Vec& b);

// ---------------------------------------------------------------------------
// Max pooling, x[N,C,H,W] -> y[N,C,Ho,Wo], square window `kernel`; padded
// positions act as -inf (they never win). Requires 2*pad <= kernel, as
// PyTorch does, so every window holds at least one real element.
Vec maxpool_forward(const Vec& x, int N, int C, int H, int W, int kernel, int stride, int pad);

// Global average pooling: x[N,C,H,W] -> y[N,C] (mean over H*W).
Vec avgpool_global(const Vec& x, int N, int C, int H, int W);

// ---------------------------------------------------------------------------
// Fully connected: y[N,Out] = x[N,In] * w[Out,In]^T + b[Out].
Vec linear_forward(const Vec& x, int N, int In, const Vec& w, int Out, const Vec& b);

// ---------------------------------------------------------------------------
// Shortcut option A: x[N,Ci,H,W] -> y[N,c_out,ceil(H/s),ceil(W/s)] with
// y[:, :Ci] = x[:, :, ::s, ::s] and the channels Ci..c_out-1 zero (PyTorch:
// F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, 0, c_out - Ci))). Requires
// c_out >= Ci and stride >= 1.
Vec shortcut_pad_forward(const Vec& x, int N, int Ci, int H, int W, int c_out, int stride);

// Output spatial size of shortcut_pad_forward along one axis: ceil(in / s).
int shortcut_out_size(int in, int stride);

// ---------------------------------------------------------------------------
// Softmax cross-entropy with label smoothing, PyTorch semantics
// (F.cross_entropy(logits, labels, label_smoothing=smoothing)):
// target t = (1 - smoothing) * onehot(label) + smoothing / K, and
// loss = mean over n of -sum_k t[n,k] * log softmax(logits[n])[k].
// logits [N,K] row-major; labels in [0, K) (throws otherwise).
double softmax_cross_entropy(const Vec& logits, int N, int K, const std::vector<int>& labels, double smoothing);

// Analytic d(loss)/d(logits) of softmax_cross_entropy: (softmax - t) / N.
Vec softmax_cross_entropy_grad(const Vec& logits, int N, int K, const std::vector<int>& labels, double smoothing);

// Row-wise softmax of logits [N,K] (numerically stable).
Vec softmax(const Vec& logits, int N, int K);

// Number of rows whose argmax (first maximum on ties) equals the label.
int top1_hits(const Vec& logits, int N, int K, const std::vector<int>& labels);

}  // namespace rn::ref
