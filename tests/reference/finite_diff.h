// Central finite-difference gradient harness and test-data helpers for the
// layer gradient checks.
//
// Recipe for checking one engine layer (fp32) against the double reference
// (ref_ops.h), with fixed random projection weights r:
//
//   L(theta) = projected(ref_forward(theta), r) = sum_i r_i * y_i
//
//   * forward:  compare(engine_y, ref_forward(x))
//   * backward: run the engine backward with upstream gradient dy = r
//     (dL/dy = r) and compare its dx / dW / db with
//     numeric_grad([&](const Vec& t) { return projected(ref_forward(t), r); }, theta)
//
// Accuracy of the oracle: with h = 1e-6 the FD error is about
// 1e-16 * sum_i |r_i y_i| / h, i.e. 1e-10 .. 1e-8 absolute for the tiny test
// shapes (measured in test_reference_ops.cpp: at most ~1e-6 by compare() with
// its 1e-3 floor, BN+ReLU input gradient the worst). That is far below fp32
// engine error, so engine tolerances are set by fp32, not by FD.
//
// Random data from these helpers is rounded to fp32-representable values, so
// to_float(x) hands the engine exactly what the reference sees.
//
// FD is wrong near kinks: for ReLU (input within ~h of 0) and max pooling (the
// window maximum within ~h of another element). nudge_from_zero,
// make_distinct and nudge_bn_relu_*_inputs move random data away from those
// kinks; min_abs and maxpool_min_gap check that it is (assert on them in
// tests so a kink cannot silently pass or fail a check).
//
// Only the standard library is used; no engine headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tests/reference/ref_ops.h"

namespace rn::ref {

// ---------------------------------------------------------------------------
// Finite differences.

// Central differences: g_j = (f(x + h e_j) - f(x - h e_j)) / (2h), where the
// divisor is the step actually taken in floating point
// ((x_j + h) - (x_j - h)), which removes the representation error of the step.
// Costs 2 * x.size() evaluations of f.
std::vector<double> numeric_grad(const std::function<double(const std::vector<double>&)>& f,
                                 std::vector<double> x, double h = 1e-6);

// sum_i r_i * y_i (sizes must match; throws std::invalid_argument otherwise).
double projected(const std::vector<double>& y, const std::vector<double>& r);
double projected(const std::vector<float>& y, const std::vector<double>& r);

// ---------------------------------------------------------------------------
// Random data (deterministic for a given seed on every platform: the
// conversion from the 64-bit stream to doubles is done here, not by
// std::uniform_real_distribution). Values are rounded to the nearest float.

std::mt19937_64 make_rng(std::uint64_t seed);

// Fills v with uniform values in [lo, hi].
void fill_uniform(std::vector<double>& v, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0);
std::vector<double> random_uniform(std::size_t n, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0);
std::vector<double> random_uniform(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0);

// n labels uniform in [0, k).
std::vector<int> random_labels(int n, int k, std::mt19937_64& rng);

// ---------------------------------------------------------------------------
// fp32 <-> double.

std::vector<float> to_float(const std::vector<double>& v);
std::vector<double> to_double(const std::vector<float>& v);
// The nearest float, as a double.
double round_to_float(double v);

// ---------------------------------------------------------------------------
// Comparison.

struct Comparison {
  double max_rel_err = 0.0;  // max_i |a_i - b_i| / max(floor, |a_i| + |b_i|); +inf on NaN/inf
  double max_abs_err = 0.0;  // max_i |a_i - b_i|
  std::size_t worst = 0;     // index of the max relative error
  double a_worst = 0.0, b_worst = 0.0;
  std::size_t size = 0;
  // e.g. "max rel err 3.1e-04 at [1,2,0,5] (flat 77): a=0.5123 b=0.5126; max abs err ...".
  // With a shape (e.g. {N, C, H, W}) the worst index is also given per axis.
  std::string str(const std::vector<int>& shape = {}) const;
};

// Compares a (e.g. the engine's result) with b (the reference). Throws
// std::invalid_argument on a size mismatch. A NaN or infinity in a or b
// where the other side differs counts as an infinite error.
Comparison compare(const std::vector<double>& a, const std::vector<double>& b, double floor = 1e-3);
Comparison compare(const std::vector<float>& a, const std::vector<double>& b, double floor = 1e-3);

// "[n,c,h,w]" for a flat index into a tensor of the given shape.
std::string unravel_index(std::size_t flat, const std::vector<int>& shape);

// ---------------------------------------------------------------------------
// Kink guards.

// Smallest |x_i| (+inf for an empty vector).
double min_abs(const std::vector<double>& x);

// Moves every element with |x_i| < margin to sign(x_i) * (margin + |x_i|)
// (+0 goes to +margin), keeping the order of the values; the results are
// float-representable. Afterwards min_abs(x) >= margin. For ReLU inputs.
void nudge_from_zero(std::vector<double>& x, double margin = 1e-3);

// Within each consecutive group of group_size elements (e.g. one H*W plane
// of an NCHW tensor), makes all values pairwise at least `margin` apart,
// keeping their order and float-representability (values only move up, by at
// most group_size * margin). For max-pool inputs: with group_size = H*W no
// window can hold a near-tie. group_size 0 means the whole vector.
void make_distinct(std::vector<double>& x, std::size_t group_size, double margin = 1e-3);

// Over all max-pool windows of x[N,C,H,W] (same geometry as
// maxpool_forward), the smallest gap between a window's maximum and the
// largest other real element in it (+inf if no window has two elements).
// FD through max pooling is valid when this is well above the FD step.
double maxpool_min_gap(const std::vector<double>& x, int N, int C, int H, int W, int kernel, int stride, int pad);

// For fused BN + ReLU: adjusts x so every pre-ReLU value
// gamma * (x - mean) / sqrt(var + eps) + beta is at least `margin` away from
// 0, where mean/var are the batch statistics of x itself (train) or the given
// running statistics (eval). Elements near the kink are moved away from it
// (values stay float-representable); in training the statistics shift, so
// this iterates. Returns false if it could not (e.g. a channel with
// gamma == 0 and |beta| < margin); check the result.
bool nudge_bn_relu_train_inputs(std::vector<double>& x, int N, int C, int H, int W, const std::vector<double>& gamma,
                                const std::vector<double>& beta, double eps, double margin = 1e-3);
bool nudge_bn_relu_eval_inputs(std::vector<double>& x, int N, int C, int H, int W, const std::vector<double>& gamma,
                               const std::vector<double>& beta, const std::vector<double>& running_mean,
                               const std::vector<double>& running_var, double eps, double margin = 1e-3);

}  // namespace rn::ref
