// RAII cuDNN descriptors (tensor, filter, convolution, pooling, activation)
// and the mapping from the project's DType/Layout to cuDNN's enums.
//
// A descriptor is created once, when a kernel object or a convolution plan is
// built, and only read afterwards; none of these allocates device memory.
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <utility>

#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/cuda_kernels.h"
#include "trainer/core/tensor.h"

namespace rn::cuda {

// fp32 -> CUDNN_DATA_FLOAT, bf16 -> CUDNN_DATA_BFLOAT16, fp16 ->
// CUDNN_DATA_HALF.
cudnnDataType_t cudnn_dtype(DType t);
// kNCHW and kNC -> CUDNN_TENSOR_NCHW, kNHWC -> CUDNN_TENSOR_NHWC; the CPU's
// blocked layouts are an internal error here.
cudnnTensorFormat_t cudnn_format(Layout l);
// A shape as [n, c, h, w]: rank 4 as is, [n, c] as [n, c, 1, 1], [n] as [n, 1, 1, 1].
Dims4 dims4(const Shape& s);
// v as an int for cuDNN's 32-bit dimensions (an internal error when it does not fit).
int to_int(int64_t v, const char* what);

// Owns one cuDNN descriptor of type T; movable, not copyable.
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class CudnnDescriptor {
 public:
  CudnnDescriptor() { CUDNN_CHECK(Create(&d_)); }
  ~CudnnDescriptor() {
    if (d_) (void)Destroy(d_);  // a destructor cannot throw; destroying a valid descriptor does not fail
  }
  CudnnDescriptor(CudnnDescriptor&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  CudnnDescriptor& operator=(CudnnDescriptor&& o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;
  T get() const { return d_; }

 private:
  T d_ = nullptr;
};

// A packed 4-D tensor [n, c, h, w] in layout l (NCHW or NHWC) of dtype t.
class TensorDesc {
 public:
  TensorDesc(Dims4 d, Layout l, DType t);
  cudnnTensorDescriptor_t get() const { return d_.get(); }

 private:
  CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor> d_;
};

// The descriptor cuDNN derives from x for batch-norm scale, bias, mean and
// inverse std-dev (fp32 [1, C, 1, 1] for fp32, bf16 and fp16 data).
class BnParamDesc {
 public:
  BnParamDesc(const TensorDesc& x, cudnnBatchNormMode_t mode);
  cudnnTensorDescriptor_t get() const { return d_.get(); }

 private:
  CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor> d_;
};

// Convolution weights [out, in, kh, kw]: memory order OIHW for layout kNCHW,
// OHWI (cuDNN's NHWC filter, "KRSC") for kNHWC.
class FilterDesc {
 public:
  FilterDesc(int64_t out, int64_t in, int64_t kh, int64_t kw, Layout l, DType t);
  cudnnFilterDescriptor_t get() const { return d_.get(); }

 private:
  CudnnDescriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor> d_;
};

// A 2-D cross-correlation (what PyTorch calls convolution) with fp32
// accumulation, symmetric padding and no dilation.
class ConvDesc {
 public:
  ConvDesc(int64_t pad, int64_t stride, cudnnMathType_t math);
  void set_math(cudnnMathType_t math);
  cudnnMathType_t math() const { return math_; }
  cudnnConvolutionDescriptor_t get() const { return d_.get(); }

 private:
  CudnnDescriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor> d_;
  cudnnMathType_t math_;
};

class PoolDesc {
 public:
  PoolDesc(cudnnPoolingMode_t mode, int64_t kh, int64_t kw, int64_t pad, int64_t stride);
  cudnnPoolingDescriptor_t get() const { return d_.get(); }

 private:
  CudnnDescriptor<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor, cudnnDestroyPoolingDescriptor> d_;
};

// ReLU, NaNs propagated (a NaN must reach the loss, where the trainer sees it).
class ReluDesc {
 public:
  ReluDesc();
  cudnnActivationDescriptor_t get() const { return d_.get(); }

 private:
  CudnnDescriptor<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor, cudnnDestroyActivationDescriptor> d_;
};

}  // namespace rn::cuda
