// Layout and dtype conversion: NCHW <-> NHWC transposes through 32x32
// shared-memory tiles (they run every step, for conv weights and
// activations), a thread per pixel where there are only a few channels (the
// RGB input batch, every step: a 32-row tile would hold 3 rows), and
// same-layout casts. Values go through fp32 and are rounded once.
#include <string>

#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_dtype.cuh"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/backend/cuda/cuda_launch.cuh"

namespace rn::cuda {
namespace {

constexpr int kTile = 32;
constexpr int kTileRows = 8;  // a 32x8 block moves a 32x32 tile in 4 rounds
constexpr unsigned kMaxGridYZ = 65535;

template <class S, class D>
__global__ void cast_kernel(const S* src, D* dst, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) store(dst, i, load(src, i));
}

// dst[b][col][row] = src[b][row][col] for `batches` matrices of rows x cols.
// NCHW -> NHWC is rows = C, cols = H*W; NHWC -> NCHW is rows = H*W, cols = C.
// Loops over tiles in y and z cover counts beyond the grid's y/z limits.
template <class S, class D>
__global__ void transpose_kernel(const S* src, D* dst, int64_t batches, int64_t rows, int64_t cols) {
  __shared__ float tile[kTile][kTile + 1];  // +1: no bank conflicts on the transposed read
  const int64_t col0 = int64_t(blockIdx.x) * kTile;
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  for (int64_t b = blockIdx.z; b < batches; b += gridDim.z) {
    const S* s = src + b * rows * cols;
    D* d = dst + b * rows * cols;
    for (int64_t rt = blockIdx.y; rt < row_tiles; rt += gridDim.y) {
      const int64_t row0 = rt * kTile;
      // Coalesced read along cols.
      for (int j = threadIdx.y; j < kTile; j += kTileRows) {
        const int64_t r = row0 + j, c = col0 + threadIdx.x;
        if (r < rows && c < cols) tile[j][threadIdx.x] = load(s, r * cols + c);
      }
      __syncthreads();
      // Coalesced write along rows (dst's fastest dimension).
      for (int j = threadIdx.y; j < kTile; j += kTileRows) {
        const int64_t c = col0 + j, r = row0 + threadIdx.x;
        if (r < rows && c < cols) store(d, c * rows + r, tile[threadIdx.x][j]);
      }
      __syncthreads();  // the tile is refilled in the next round
    }
  }
}

// Few channels: one thread per pixel moves its c values between the c
// planes of NCHW (coalesced across threads, plane by plane) and the c
// consecutive elements of NHWC (consecutive threads, consecutive pixels).
template <class S, class D>
__global__ void few_channels_kernel(const S* src, D* dst, int64_t n, int c, int64_t hw, bool to_nhwc) {
  for (int64_t p = global_thread(); p < n * hw; p += grid_threads()) {
    const int64_t b = p / hw;
    const int64_t planar = b * c * hw + (p - b * hw);  // channel 0 of pixel p in NCHW
    for (int k = 0; k < c; ++k) {
      if (to_nhwc)
        store(dst, p * c + k, load(src, planar + k * hw));
      else
        store(dst, planar + k * hw, load(src, p * c + k));
    }
  }
}
constexpr int64_t kFewChannels = 8;

// kNC is kNCHW with h = w = 1; the blocked CPU layouts never reach the GPU.
Layout plain(Layout l) {
  if (l == Layout::kNC) return Layout::kNCHW;
  if (l != Layout::kNCHW && l != Layout::kNHWC)
    throw_internal("cuda::convert", __FILE__, __LINE__, std::string("unsupported layout ") + layout_name(l));
  return l;
}

template <class S, class D>
void launch(const S* src, Layout sl, D* dst, Layout dl, Dims4 d, cudaStream_t s) {
  const int64_t n = d.numel();
  // With one channel or one pixel NCHW and NHWC are the same memory order.
  if (sl == dl || d.c == 1 || d.h * d.w == 1) {
    cast_kernel<S, D><<<grid_for(n), kThreads, 0, s>>>(src, dst, n);
    CUDA_CHECK_LAUNCH();
    return;
  }
  const int64_t hw = d.h * d.w;
  if (d.c <= kFewChannels) {
    few_channels_kernel<S, D><<<grid_for(d.n * hw), kThreads, 0, s>>>(src, dst, d.n, int(d.c), hw,
                                                                       dl == Layout::kNHWC);
    CUDA_CHECK_LAUNCH();
    return;
  }
  const int64_t rows = sl == Layout::kNCHW ? d.c : hw;
  const int64_t cols = sl == Layout::kNCHW ? hw : d.c;
  const int64_t col_tiles = (cols + kTile - 1) / kTile, row_tiles = (rows + kTile - 1) / kTile;
  RN_CHECK(col_tiles <= 0x7fffffff, "convert: too many columns " + std::to_string(cols));
  const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(std::min<int64_t>(row_tiles, kMaxGridYZ)),
                  static_cast<unsigned>(std::min<int64_t>(d.n, kMaxGridYZ)));
  transpose_kernel<S, D><<<grid, dim3(kTile, kTileRows), 0, s>>>(src, dst, d.n, rows, cols);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void convert(const void* src, Layout src_layout, DType src_t, void* dst, Layout dst_layout, DType dst_t, Dims4 d,
             cudaStream_t s) {
  const int64_t n = d.numel();
  if (n <= 0) return;
  const Layout sl = plain(src_layout), dl = plain(dst_layout);
  const bool same_order = sl == dl || d.c == 1 || d.h * d.w == 1;
  if (same_order && src_t == dst_t) {
    if (src != dst)
      CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * dtype_size(src_t), cudaMemcpyDeviceToDevice, s));
    return;
  }
  RN_CHECK(src != dst, "convert: in-place conversion between layouts or dtypes");
  dispatch_dtype(src_t, [&](auto stag) {
    using S = typename decltype(stag)::type;
    dispatch_dtype(dst_t, [&](auto dtag) {
      using D = typename decltype(dtag)::type;
      launch(static_cast<const S*>(src), sl, static_cast<D*>(dst), dl, d, s);
    });
  });
}

}  // namespace rn::cuda
