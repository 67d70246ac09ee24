// Naive double-precision reference layers; see ref_ops.h.
#include "tests/reference/ref_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace rn::ref {

namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("rn::ref: " + what);
}

std::size_t count(int a, int b = 1, int c = 1, int d = 1) {
  require(a >= 0 && b >= 0 && c >= 0 && d >= 0, "negative dimension");
  return static_cast<std::size_t>(a) * b * c * d;
}

void require_size(const Vec& v, std::size_t n, const char* name) {
  require(v.size() == n, std::string(name) + " has " + std::to_string(v.size()) + " elements, expected " +
                             std::to_string(n));
}

void require_labels(const std::vector<int>& labels, int N, int K) {
  require(labels.size() == count(N), "labels has " + std::to_string(labels.size()) + " entries, expected " +
                                         std::to_string(N));
  for (int l : labels) require(l >= 0 && l < K, "label " + std::to_string(l) + " outside [0, K)");
}

}  // namespace

int conv_out_size(int in, int k, int stride, int pad) {
  require(stride >= 1, "stride must be >= 1");
  require(k >= 1 && pad >= 0, "kernel must be >= 1 and pad >= 0");
  require(in + 2 * pad >= k, "window larger than padded input");
  return (in + 2 * pad - k) / stride + 1;
}

Vec conv2d_forward(const Vec& x, int N, int Ci, int H, int W, const Vec& w, int Co, int K, int stride, int pad) {
  require_size(x, count(N, Ci, H, W), "conv x");
  require_size(w, count(Co, Ci, K, K), "conv w");
  const int Ho = conv_out_size(H, K, stride, pad);
  const int Wo = conv_out_size(W, K, stride, pad);
  Vec y(count(N, Co, Ho, Wo), 0.0);
  for (int n = 0; n < N; ++n)
    for (int co = 0; co < Co; ++co)
      for (int oh = 0; oh < Ho; ++oh)
        for (int ow = 0; ow < Wo; ++ow) {
          double acc = 0.0;
          for (int ci = 0; ci < Ci; ++ci)
            for (int kh = 0; kh < K; ++kh)
              for (int kw = 0; kw < K; ++kw) {
                const int ih = oh * stride - pad + kh;
                const int iw = ow * stride - pad + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;  // zero padding
                acc += x[idx4(n, ci, ih, iw, Ci, H, W)] * w[idx4(co, ci, kh, kw, Ci, K, K)];
              }
          y[idx4(n, co, oh, ow, Co, Ho, Wo)] = acc;
        }
  return y;
}

BnTrainResult batchnorm_train_forward(const Vec& x, int N, int C, int H, int W, const Vec& gamma, const Vec& beta,
                                      double eps, bool relu) {
  require_size(x, count(N, C, H, W), "bn x");
  require_size(gamma, count(C), "bn gamma");
  require_size(beta, count(C), "bn beta");
  const std::size_t m = count(N, H, W);
  require(m >= 2, "batchnorm training needs more than one value per channel");
  BnTrainResult r;
  r.mean.assign(C, 0.0);
  r.var.assign(C, 0.0);
  r.var_unbiased.assign(C, 0.0);
  for (int c = 0; c < C; ++c) {
    double sum = 0.0;
    for (int n = 0; n < N; ++n)
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) sum += x[idx4(n, c, h, w, C, H, W)];
    const double mean = sum / static_cast<double>(m);
    double sq = 0.0;  // two-pass variance: exact enough for an oracle
    for (int n = 0; n < N; ++n)
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) {
          const double d = x[idx4(n, c, h, w, C, H, W)] - mean;
          sq += d * d;
        }
    r.mean[c] = mean;
    r.var[c] = sq / static_cast<double>(m);
    r.var_unbiased[c] = sq / static_cast<double>(m - 1);
  }
  r.y = batchnorm_eval_forward(x, N, C, H, W, gamma, beta, r.mean, r.var, eps, relu);
  return r;
}

Vec batchnorm_eval_forward(const Vec& x, int N, int C, int H, int W, const Vec& gamma, const Vec& beta,
                           const Vec& running_mean, const Vec& running_var, double eps, bool relu) {
  require_size(x, count(N, C, H, W), "bn x");
  require_size(gamma, count(C), "bn gamma");
  require_size(beta, count(C), "bn beta");
  require_size(running_mean, count(C), "bn mean");
  require_size(running_var, count(C), "bn var");
  Vec y(x.size());
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      const double inv_std = 1.0 / std::sqrt(running_var[c] + eps);
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) {
          const std::size_t i = idx4(n, c, h, w, C, H, W);
          double v = gamma[c] * (x[i] - running_mean[c]) * inv_std + beta[c];
          if (relu && v < 0.0) v = 0.0;
          y[i] = v;
        }
    }
  return y;
}

void batchnorm_update_running(Vec& running_mean, Vec& running_var, const BnTrainResult& batch, double momentum) {
  require_size(running_mean, batch.mean.size(), "running mean");
  require_size(running_var, batch.var_unbiased.size(), "running var");
  for (std::size_t c = 0; c < running_mean.size(); ++c) {
    running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * batch.mean[c];
    running_var[c] = (1.0 - momentum) * running_var[c] + momentum * batch.var_unbiased[c];
  }
}

Vec relu_forward(const Vec& x) {
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0.0 ? x[i] : 0.0;
  return y;
}

Vec add(const Vec& a, const Vec& b) {
  require_size(b, a.size(), "add b");
  Vec y(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) y[i] = a[i] + b[i];
  return y;
}

Vec maxpool_forward(const Vec& x, int N, int C, int H, int W, int kernel, int stride, int pad) {
  require_size(x, count(N, C, H, W), "maxpool x");
  require(2 * pad <= kernel, "maxpool pad must be at most half the kernel");
  const int Ho = conv_out_size(H, kernel, stride, pad);
  const int Wo = conv_out_size(W, kernel, stride, pad);
  Vec y(count(N, C, Ho, Wo));
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int oh = 0; oh < Ho; ++oh)
        for (int ow = 0; ow < Wo; ++ow) {
          double best = -std::numeric_limits<double>::infinity();  // padding value
          bool any = false;
          for (int kh = 0; kh < kernel; ++kh)
            for (int kw = 0; kw < kernel; ++kw) {
              const int ih = oh * stride - pad + kh;
              const int iw = ow * stride - pad + kw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const double v = x[idx4(n, c, ih, iw, C, H, W)];
              if (!any || v > best) best = v;
              any = true;
            }
          require(any, "maxpool window entirely in padding");
          y[idx4(n, c, oh, ow, C, Ho, Wo)] = best;
        }
  return y;
}

Vec avgpool_global(const Vec& x, int N, int C, int H, int W) {
  require_size(x, count(N, C, H, W), "avgpool x");
  require(H * W > 0, "avgpool over an empty plane");
  Vec y(count(N, C), 0.0);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      double sum = 0.0;
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) sum += x[idx4(n, c, h, w, C, H, W)];
      y[static_cast<std::size_t>(n) * C + c] = sum / static_cast<double>(H * W);
    }
  return y;
}

Vec linear_forward(const Vec& x, int N, int In, const Vec& w, int Out, const Vec& b) {
  require_size(x, count(N, In), "linear x");
  require_size(w, count(Out, In), "linear w");
  require_size(b, count(Out), "linear b");
  Vec y(count(N, Out));
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < Out; ++o) {
      double acc = b[o];
      for (int i = 0; i < In; ++i)
        acc += x[static_cast<std::size_t>(n) * In + i] * w[static_cast<std::size_t>(o) * In + i];
      y[static_cast<std::size_t>(n) * Out + o] = acc;
    }
  return y;
}

int shortcut_out_size(int in, int stride) {
  require(stride >= 1, "shortcut stride must be >= 1");
  require(in >= 0, "negative dimension");
  return (in + stride - 1) / stride;
}

Vec shortcut_pad_forward(const Vec& x, int N, int Ci, int H, int W, int c_out, int stride) {
  require_size(x, count(N, Ci, H, W), "shortcut x");
  require(c_out >= Ci, "shortcut c_out must be >= input channels");
  const int Ho = shortcut_out_size(H, stride);
  const int Wo = shortcut_out_size(W, stride);
  Vec y(count(N, c_out, Ho, Wo), 0.0);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < Ci; ++c)
      for (int oh = 0; oh < Ho; ++oh)
        for (int ow = 0; ow < Wo; ++ow)
          y[idx4(n, c, oh, ow, c_out, Ho, Wo)] = x[idx4(n, c, oh * stride, ow * stride, Ci, H, W)];
  return y;
}

Vec softmax(const Vec& logits, int N, int K) {
  require_size(logits, count(N, K), "softmax logits");
  require(K >= 1, "softmax needs K >= 1");
  Vec p(logits.size());
  for (int n = 0; n < N; ++n) {
    const double* z = &logits[static_cast<std::size_t>(n) * K];
    double mx = z[0];
    for (int k = 1; k < K; ++k) mx = std::max(mx, z[k]);
    double sum = 0.0;
    for (int k = 0; k < K; ++k) sum += std::exp(z[k] - mx);
    for (int k = 0; k < K; ++k) p[static_cast<std::size_t>(n) * K + k] = std::exp(z[k] - mx) / sum;
  }
  return p;
}

double softmax_cross_entropy(const Vec& logits, int N, int K, const std::vector<int>& labels, double smoothing) {
  require_size(logits, count(N, K), "ce logits");
  require(N >= 1 && K >= 1, "cross entropy needs N >= 1 and K >= 1");
  require_labels(labels, N, K);
  double total = 0.0;
  for (int n = 0; n < N; ++n) {
    const double* z = &logits[static_cast<std::size_t>(n) * K];
    double mx = z[0];
    for (int k = 1; k < K; ++k) mx = std::max(mx, z[k]);
    double sum = 0.0;
    for (int k = 0; k < K; ++k) sum += std::exp(z[k] - mx);
    const double log_z = mx + std::log(sum);  // log-sum-exp
    double loss = 0.0;
    for (int k = 0; k < K; ++k) {
      const double t = (k == labels[n] ? 1.0 - smoothing : 0.0) + smoothing / K;
      loss -= t * (z[k] - log_z);  // log softmax = z - logsumexp
    }
    total += loss;
  }
  return total / N;
}

Vec softmax_cross_entropy_grad(const Vec& logits, int N, int K, const std::vector<int>& labels, double smoothing) {
  require_labels(labels, N, K);
  Vec g = softmax(logits, N, K);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      const double t = (k == labels[n] ? 1.0 - smoothing : 0.0) + smoothing / K;
      double& v = g[static_cast<std::size_t>(n) * K + k];
      v = (v - t) / N;
    }
  return g;
}

int top1_hits(const Vec& logits, int N, int K, const std::vector<int>& labels) {
  require_size(logits, count(N, K), "top1 logits");
  require_labels(labels, N, K);
  int hits = 0;
  for (int n = 0; n < N; ++n) {
    int best = 0;
    for (int k = 1; k < K; ++k)
      if (logits[static_cast<std::size_t>(n) * K + k] > logits[static_cast<std::size_t>(n) * K + best]) best = k;
    hits += best == labels[n] ? 1 : 0;
  }
  return hits;
}

}  // namespace rn::ref
