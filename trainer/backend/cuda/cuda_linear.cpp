// Fully connected layer on cuBLAS. cuBLAS is column-major; a row-major
// [r, c] matrix is the column-major [c, r] matrix (its transpose) with
// leading dimension c. So, writing X, W, Y, dY for the row-major tensors:
//   forward        Y = X W^T    ->  Y^T  = W X^T      gemm(T, N, out, n, in)
//   backward_data  dX = dY W    ->  dX^T = W^T dY^T   gemm(N, N, in, n, out)
//   backward_w     dW = dY^T X  ->  dW^T = X^T dY     gemm(N, T, in, out, n)
// where the column-major views are W^T [in, out], X^T [in, n], dY^T [out, n].
// CUBLAS_COMPUTE_32F_PEDANTIC keeps full fp32 arithmetic whatever math mode
// the shared handle has (no TF32 or bf16x9 emulation). cuBLAS GEMMs give the
// same bits run after run on the same GPU model and library version.
#include "trainer/backend/cuda/cuda_linear.h"

#include <climits>
#include <string>

#include "trainer/backend/cuda/cublas_api.h"
#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_linear_bias.h"

namespace rn::cuda {
namespace {

class CudaLinear final : public LinearKernel {
 public:
  CudaLinear(cublasHandle_t h, cudaStream_t s, int64_t n, int64_t in, int64_t out)
      : handle_(h), stream_(s), n_(n), in_(in), out_(out) {
    RN_CHECK(n > 0 && in > 0 && out > 0 && n <= INT_MAX && in <= INT_MAX && out <= INT_MAX,
             "linear layer sizes n=" + std::to_string(n) + " in=" + std::to_string(in) + " out=" + std::to_string(out));
  }

  void forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    check(x, n_, in_, "x");
    check(w, out_, in_, "w");
    check(y, n_, out_, "y");
    RN_CHECK(b.numel() == out_ && b.dtype() == DType::kF32, "linear: bias " + b.shape().str());
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, out_, n_, in_, w.data(), in_, x.data(), in_, y.data(), out_);
    add_bias_rows(y.data(), b.data(), n_, out_, stream_);
  }

  void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) override {
    check(dy, n_, out_, "dy");
    check(w, out_, in_, "w");
    check(dx, n_, in_, "dx");
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, in_, n_, out_, w.data(), in_, dy.data(), out_, dx.data(), in_);
  }

  void backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db) override {
    check(x, n_, in_, "x");
    check(dy, n_, out_, "dy");
    check(dw, out_, in_, "dw");
    RN_CHECK(db.numel() == out_ && db.dtype() == DType::kF32, "linear: bias gradient " + db.shape().str());
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, in_, out_, n_, x.data(), in_, dy.data(), out_, dw.data(), in_);
    column_sums(dy.data(), n_, out_, db.data(), stream_);
  }

 private:
  // C (m x n, column-major) = op(A) op(B), overwritten (beta = 0).
  void gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
            const float* b, int64_t ldb, float* c, int64_t ldc) {
    const float one = 1.f, zero = 0.f;
    // The handle is shared: bind it to our stream and host scalars on every call.
    const CublasApi& api = cublas();
    CUBLAS_CHECK(api.set_stream(handle_, stream_));
    CUBLAS_CHECK(api.set_pointer_mode(handle_, CUBLAS_POINTER_MODE_HOST));
    CUBLAS_CHECK(api.gemm_ex(handle_, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &one, a,
                             CUDA_R_32F, static_cast<int>(lda), b, CUDA_R_32F, static_cast<int>(ldb), &zero, c,
                             CUDA_R_32F, static_cast<int>(ldc), CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
  }

  static void check(const Tensor& t, int64_t rows, int64_t cols, const char* what) {
    RN_CHECK(t.numel() == rows * cols && t.dtype() == DType::kF32,
             std::string("linear: ") + what + " " + t.shape().str() + " " + dtype_name(t.dtype()) + ", expected [" +
                 std::to_string(rows) + ", " + std::to_string(cols) + "] fp32");
  }

  cublasHandle_t handle_;
  cudaStream_t stream_;
  int64_t n_, in_, out_;
};

}  // namespace

std::unique_ptr<LinearKernel> make_cuda_linear(cublasHandle_t h, cudaStream_t s, int64_t n, int64_t in, int64_t out) {
  return std::make_unique<CudaLinear>(h, s, n, in, out);
}

}  // namespace rn::cuda
