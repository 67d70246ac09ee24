// Softmax cross-entropy with label smoothing, as the CPU backend computes it
// (cpu_softmax_xent.cpp): per sample i with label y, K classes, smoothing s,
//   target_j = (j == y ? 1 - s : 0) + s / K,  loss_i = -sum_j target_j log p_j,
//   dlogits_ij = loss_scale * (p_j - target_j) / counted.
// Because sum_j target_j = 1, loss_i = log_sum_exp - (1 - s) z_y - (s / K)
// sum_j z_j, which needs no per-element double exp.
//
// One block of 32 warps does the whole batch, a warp per sample (sample i on
// warp i % 32): the result needs no scratch memory and every sum has a fixed
// order (lanes strided over classes, butterfly shuffles, then the per-warp
// partials in sample order, then the 32 warps in order), so it is
// reproducible bit for bit. Logits are small (N x K); one SM streams them in
// tens of microseconds for ImageNet-1k.
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/backend/cuda/cuda_launch.cuh"

namespace rn::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarps = 32;
constexpr int kBlock = kWarp * kWarps;

// Largest value, first index among equals (the CPU's strict '>' scan).
__device__ __forceinline__ void argmax_merge(float& best, int64_t& arg, float o_best, int64_t o_arg) {
  if (o_best > best || (o_best == best && o_arg < arg)) {
    best = o_best;
    arg = o_arg;
  }
}

__global__ void __launch_bounds__(kBlock)
    xent_kernel(const float* logits, const int32_t* labels, int64_t n, int64_t k, float smoothing, float loss_scale,
                float* dlogits, XentResult* result) {
  __shared__ long long s_count[kBlock];
  __shared__ double s_loss[kWarps];
  __shared__ long long s_correct[kWarps];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;

  // Counted samples first: the gradient is divided by their number. A label
  // >= k is counted as skipped (the backend validates labels on the host).
  long long mine = 0;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) mine += labels[i] >= 0 && labels[i] < k;
  const long long counted = block_sum(mine, s_count);
  const float coef = counted > 0 ? static_cast<float>(double(loss_scale) / double(counted)) : 0.f;
  const double smooth_k = double(smoothing) / double(k);
  const float smooth_kf = static_cast<float>(smooth_k), on_label = static_cast<float>(1.0 - smoothing + smooth_k);

  double warp_loss = 0;
  long long warp_correct = 0;
  for (int64_t i = warp; i < n; i += kWarps) {
    const float* z = logits + i * k;
    float* dz = dlogits + i * k;
    const int32_t label = labels[i];
    if (label < 0 || label >= k) {  // skipped: no loss, zero gradient
      for (int64_t j = lane; j < k; j += kWarp) dz[j] = 0.f;
      continue;
    }
    // Max and arg-max.
    float best = lane < k ? z[lane] : -INFINITY;
    int64_t arg = lane < k ? lane : k;
#pragma unroll 4
    for (int64_t j = lane + kWarp; j < k; j += kWarp) {
      const float v = z[j];
      if (v > best) {
        best = v;
        arg = j;
      }
    }
    for (int o = kWarp / 2; o > 0; o >>= 1)
      argmax_merge(best, arg, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, arg, o));
    const float zmax = best;
    // Sum of exp(z - max) and of z, accumulated in double.
    double sum_exp = 0, sum_z = 0;
#pragma unroll 4
    for (int64_t j = lane; j < k; j += kWarp) {
      const float v = z[j];
      sum_exp += expf(v - zmax);
      sum_z += v;
    }
    sum_exp = warp_sum(sum_exp);
    sum_z = warp_sum(sum_z);
    const double log_sum = log(sum_exp) + double(zmax);
    warp_loss += log_sum - (1.0 - double(smoothing)) * double(z[label]) - smooth_k * sum_z;
    warp_correct += arg == label;
    // Gradient (reads z[j] before writing dz[j], so dlogits may alias logits).
    const float inv_sum = static_cast<float>(1.0 / sum_exp);
#pragma unroll 4
    for (int64_t j = lane; j < k; j += kWarp) {
      const float p = expf(z[j] - zmax) * inv_sum;
      const float target = j == label ? on_label : smooth_kf;
      dz[j] = (p - target) * coef;
    }
  }
  if (lane == 0) {
    s_loss[warp] = warp_loss;
    s_correct[warp] = warp_correct;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double loss = 0;
    long long correct = 0;
    for (int w = 0; w < kWarps; ++w) {
      loss += s_loss[w];
      correct += s_correct[w];
    }
    result->loss = loss;
    result->correct = correct;
    result->counted = counted;
  }
}

}  // namespace

void softmax_cross_entropy(const float* logits, const int32_t* labels, int64_t n, int64_t k, float smoothing,
                           float loss_scale, float* dlogits, XentResult* result, cudaStream_t s) {
  RN_CHECK(k > 0, "softmax_cross_entropy: no classes");
  xent_kernel<<<1, kBlock, 0, s>>>(logits, labels, n, k, smoothing, loss_scale, dlogits, result);
  CUDA_CHECK_LAUNCH();
}

}  // namespace rn::cuda
