// Bias forward (a broadcast add) and backward (column sums) of the fully connected layer.
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_launch.cuh"
#include "trainer/backend/cuda/cuda_linear_bias.h"

namespace rn::cuda {
namespace {

constexpr int kCols = 32;  // a warp reads 32 neighbouring columns of a row
constexpr int kRowGroups = 8;

__global__ void add_bias_kernel(float* y, const float* b, int64_t total, int64_t out) {
  for (int64_t i = global_thread(); i < total; i += grid_threads()) y[i] += b[i % out];
}

// Block (32, 8): thread (x, r) sums rows r, r + 8, ... of column x in order,
// then the 8 partials are added in order: fixed, so reproducible.
__global__ void column_sums_kernel(const float* dy, int64_t n, int64_t out, float* db) {
  __shared__ float part[kRowGroups][kCols];
  const int64_t col = int64_t(blockIdx.x) * kCols + threadIdx.x;
  float sum = 0.f;
  if (col < out)
    for (int64_t r = threadIdx.y; r < n; r += kRowGroups) sum += dy[r * out + col];
  part[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < out) {
    float total = 0.f;
    for (int g = 0; g < kRowGroups; ++g) total += part[g][threadIdx.x];
    db[col] = total;
  }
}

}  // namespace

void add_bias_rows(float* y, const float* b, int64_t n, int64_t out, cudaStream_t s) {
  const int64_t total = n * out;
  if (total <= 0) return;
  add_bias_kernel<<<grid_for(total), kThreads, 0, s>>>(y, b, total, out);
  CUDA_CHECK_LAUNCH();
}

void column_sums(const float* dy, int64_t n, int64_t out, float* db, cudaStream_t s) {
  if (out <= 0) return;
  const int64_t blocks = (out + kCols - 1) / kCols;
  RN_CHECK(blocks <= 0x7fffffff, "column_sums: too many columns");
  column_sums_kernel<<<static_cast<unsigned>(blocks), dim3(kCols, kRowGroups), 0, s>>>(dy, n, out, db);
  CUDA_CHECK_LAUNCH();
}

}  // namespace rn::cuda
