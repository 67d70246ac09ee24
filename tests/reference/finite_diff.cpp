// Finite-difference harness and test-data helpers; see finite_diff.h.
#include "tests/reference/finite_diff.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace rn::ref {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("rn::ref: " + what);
}

// The smallest float >= v, as a double.
double round_up_to_float(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) < v) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

template <typename T>
Comparison compare_impl(const std::vector<T>& a, const std::vector<double>& b, double floor) {
  require(a.size() == b.size(), "compare: sizes differ (" + std::to_string(a.size()) + " vs " +
                                    std::to_string(b.size()) + ")");
  Comparison c;
  c.size = a.size();
  bool first = true;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double ai = static_cast<double>(a[i]);
    const double bi = b[i];
    double abs_err, rel_err;
    if (ai == bi) {  // covers equal infinities
      abs_err = rel_err = 0.0;
    } else if (!std::isfinite(ai) || !std::isfinite(bi)) {  // NaN, or an unmatched infinity
      abs_err = rel_err = kInf;
    } else {
      abs_err = std::fabs(ai - bi);
      rel_err = abs_err / std::max(floor, std::fabs(ai) + std::fabs(bi));
    }
    c.max_abs_err = std::max(c.max_abs_err, abs_err);
    if (first || rel_err > c.max_rel_err) {
      c.max_rel_err = rel_err;
      c.worst = i;
      c.a_worst = ai;
      c.b_worst = bi;
      first = false;
    }
  }
  return c;
}

}  // namespace

std::vector<double> numeric_grad(const std::function<double(const std::vector<double>&)>& f,
                                 std::vector<double> x, double h) {
  require(h > 0.0, "numeric_grad: h must be positive");
  std::vector<double> g(x.size());
  for (std::size_t j = 0; j < x.size(); ++j) {
    const double orig = x[j];
    const double xp = orig + h;
    const double xm = orig - h;
    x[j] = xp;
    const double fp = f(x);
    x[j] = xm;
    const double fm = f(x);
    x[j] = orig;
    g[j] = (fp - fm) / (xp - xm);
  }
  return g;
}

double projected(const std::vector<double>& y, const std::vector<double>& r) {
  require(y.size() == r.size(), "projected: sizes differ (" + std::to_string(y.size()) + " vs " +
                                    std::to_string(r.size()) + ")");
  // Accumulated in long double (where wider than double): the rounding noise
  // of this sum is divided by 2h in numeric_grad, so keeping it small pays.
  long double s = 0.0L;
  for (std::size_t i = 0; i < y.size(); ++i) s += static_cast<long double>(r[i]) * static_cast<long double>(y[i]);
  return static_cast<double>(s);
}

double projected(const std::vector<float>& y, const std::vector<double>& r) { return projected(to_double(y), r); }

std::mt19937_64 make_rng(std::uint64_t seed) { return std::mt19937_64(seed); }

void fill_uniform(std::vector<double>& v, std::mt19937_64& rng, double lo, double hi) {
  require(lo <= hi, "fill_uniform: lo > hi");
  for (double& e : v) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1), 53 random bits
    // Rounding to float can reach hi (or step past lo/hi by one ulp); clamp.
    e = std::clamp(round_to_float(lo + (hi - lo) * u), lo, hi);
  }
}

std::vector<double> random_uniform(std::size_t n, std::mt19937_64& rng, double lo, double hi) {
  std::vector<double> v(n);
  fill_uniform(v, rng, lo, hi);
  return v;
}

std::vector<double> random_uniform(std::size_t n, std::uint64_t seed, double lo, double hi) {
  auto rng = make_rng(seed);
  return random_uniform(n, rng, lo, hi);
}

std::vector<int> random_labels(int n, int k, std::mt19937_64& rng) {
  require(n >= 0 && k >= 1, "random_labels: need n >= 0 and k >= 1");
  std::vector<int> l(n);
  for (int& e : l) e = static_cast<int>(rng() % static_cast<std::uint64_t>(k));
  return l;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

double round_to_float(double v) { return static_cast<double>(static_cast<float>(v)); }

std::string unravel_index(std::size_t flat, const std::vector<int>& shape) {
  std::vector<std::size_t> idx(shape.size());
  std::size_t rest = flat;
  for (std::size_t d = shape.size(); d-- > 0;) {
    const std::size_t extent = shape[d] > 0 ? static_cast<std::size_t>(shape[d]) : 1;
    idx[d] = rest % extent;
    rest /= extent;
  }
  std::string s = "[";
  for (std::size_t d = 0; d < idx.size(); ++d) {
    if (d) s += ',';
    s += std::to_string(idx[d]);
  }
  return s + "]";
}

std::string Comparison::str(const std::vector<int>& shape) const {
  if (size == 0) return "empty comparison";
  std::string where = shape.empty() ? "index " + std::to_string(worst)
                                    : unravel_index(worst, shape) + " (flat " + std::to_string(worst) + ")";
  return "max rel err " + fmt(max_rel_err) + " at " + where + ": a=" + fmt(a_worst) + " b=" + fmt(b_worst) +
         "; max abs err " + fmt(max_abs_err) + " over " + std::to_string(size) + " elements";
}

Comparison compare(const std::vector<double>& a, const std::vector<double>& b, double floor) {
  return compare_impl(a, b, floor);
}

Comparison compare(const std::vector<float>& a, const std::vector<double>& b, double floor) {
  return compare_impl(a, b, floor);
}

double min_abs(const std::vector<double>& x) {
  double m = kInf;
  for (double v : x) m = std::min(m, std::fabs(v));
  return m;
}

void nudge_from_zero(std::vector<double>& x, double margin) {
  for (double& v : x) {
    if (std::fabs(v) >= margin) continue;
    const double mag = round_up_to_float(margin + std::fabs(v));
    v = std::signbit(v) ? -mag : mag;
  }
}

void make_distinct(std::vector<double>& x, std::size_t group_size, double margin) {
  if (group_size == 0) group_size = x.size();
  if (x.empty()) return;
  require(x.size() % group_size == 0, "make_distinct: size is not a multiple of group_size");
  for (double& v : x) v = round_to_float(v);
  std::vector<std::size_t> order(group_size);
  for (std::size_t g0 = 0; g0 < x.size(); g0 += group_size) {
    std::iota(order.begin(), order.end(), g0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) { return x[i] < x[j]; });
    for (std::size_t k = 1; k < group_size; ++k) {
      const double prev = x[order[k - 1]];
      double& cur = x[order[k]];
      if (cur - prev < margin) {
        cur = round_up_to_float(prev + margin);
        while (cur - prev < margin) cur = std::nextafter(static_cast<float>(cur), std::numeric_limits<float>::infinity());
      }
    }
  }
}

double maxpool_min_gap(const std::vector<double>& x, int N, int C, int H, int W, int kernel, int stride, int pad) {
  require(x.size() == static_cast<std::size_t>(N) * C * H * W, "maxpool_min_gap: x has the wrong size");
  const int Ho = conv_out_size(H, kernel, stride, pad);
  const int Wo = conv_out_size(W, kernel, stride, pad);
  double gap = kInf;
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int oh = 0; oh < Ho; ++oh)
        for (int ow = 0; ow < Wo; ++ow) {
          double best = -kInf, second = -kInf;
          for (int kh = 0; kh < kernel; ++kh)
            for (int kw = 0; kw < kernel; ++kw) {
              const int ih = oh * stride - pad + kh;
              const int iw = ow * stride - pad + kw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const double v = x[idx4(n, c, ih, iw, C, H, W)];
              if (v > best) {
                second = best;
                best = v;
              } else if (v > second) {
                second = v;
              }
            }
          if (second > -kInf) gap = std::min(gap, best - second);
        }
  return gap;
}

namespace {

// One pass of the BN+ReLU nudge against fixed statistics: moves each element
// whose pre-activation is within `margin` of 0 to a pre-activation of
// +-2*margin. Returns the number of elements moved, or -1 if some element
// cannot be moved (gamma == 0 with |beta| < margin).
int nudge_bn_pass(std::vector<double>& x, int N, int C, int H, int W, const std::vector<double>& gamma,
                  const std::vector<double>& beta, const std::vector<double>& mean, const std::vector<double>& var,
                  double eps, double margin) {
  int moved = 0;
  for (int c = 0; c < C; ++c) {
    const double scale = gamma[c] / std::sqrt(var[c] + eps);  // d(preact)/dx at fixed statistics
    for (int n = 0; n < N; ++n)
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) {
          double& v = x[idx4(n, c, h, w, C, H, W)];
          const double pre = scale * (v - mean[c]) + beta[c];
          if (std::fabs(pre) >= margin) continue;
          if (scale == 0.0) return -1;
          const double target = std::signbit(pre) ? -2.0 * margin : 2.0 * margin;
          const double dx = (target - pre) / scale;
          v = dx >= 0.0 ? round_up_to_float(v + dx) : -round_up_to_float(-(v + dx));
          ++moved;
        }
  }
  return moved;
}

void require_bn_sizes(const std::vector<double>& x, int N, int C, int H, int W, const std::vector<double>& gamma,
                      const std::vector<double>& beta) {
  require(x.size() == static_cast<std::size_t>(N) * C * H * W, "nudge_bn_relu: x has the wrong size");
  require(gamma.size() == static_cast<std::size_t>(C) && beta.size() == static_cast<std::size_t>(C),
          "nudge_bn_relu: gamma/beta have the wrong size");
}

}  // namespace

bool nudge_bn_relu_train_inputs(std::vector<double>& x, int N, int C, int H, int W, const std::vector<double>& gamma,
                                const std::vector<double>& beta, double eps, double margin) {
  require_bn_sizes(x, N, C, H, W, gamma, beta);
  for (int iter = 0; iter < 100; ++iter) {
    const BnTrainResult st = batchnorm_train_forward(x, N, C, H, W, gamma, beta, eps, false);
    const int moved = nudge_bn_pass(x, N, C, H, W, gamma, beta, st.mean, st.var, eps, margin);
    if (moved < 0) return false;
    if (moved == 0) return true;  // the pass checked every element against the current statistics
  }
  return false;
}

bool nudge_bn_relu_eval_inputs(std::vector<double>& x, int N, int C, int H, int W, const std::vector<double>& gamma,
                               const std::vector<double>& beta, const std::vector<double>& running_mean,
                               const std::vector<double>& running_var, double eps, double margin) {
  require_bn_sizes(x, N, C, H, W, gamma, beta);
  require(running_mean.size() == static_cast<std::size_t>(C) && running_var.size() == static_cast<std::size_t>(C),
          "nudge_bn_relu: running statistics have the wrong size");
  for (int iter = 0; iter < 3; ++iter) {  // statistics are fixed: one pass moves everything, the next confirms
    const int moved = nudge_bn_pass(x, N, C, H, W, gamma, beta, running_mean, running_var, eps, margin);
    if (moved < 0) return false;
    if (moved == 0) return true;
  }
  return false;
}

}  // namespace rn::ref
