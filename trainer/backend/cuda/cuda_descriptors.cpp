#include "trainer/backend/cuda/cuda_descriptors.h"

#include <limits>
#include <string>

namespace rn::cuda {

cudnnDataType_t cudnn_dtype(DType t) {
  switch (t) {
    case DType::kF32:
      return CUDNN_DATA_FLOAT;
    case DType::kBF16:
      return CUDNN_DATA_BFLOAT16;
    case DType::kF16:
      return CUDNN_DATA_HALF;
  }
  throw_internal("cudnn_dtype", __FILE__, __LINE__, "unknown dtype");
}

cudnnTensorFormat_t cudnn_format(Layout l) {
  switch (l) {
    case Layout::kNCHW:
    case Layout::kNC:
      return CUDNN_TENSOR_NCHW;
    case Layout::kNHWC:
      return CUDNN_TENSOR_NHWC;
    default:
      break;
  }
  throw_internal("cudnn_format", __FILE__, __LINE__,
                 std::string("the CUDA backend has no layout ") + layout_name(l) + " (CPU blocked layouts only)");
}

Dims4 dims4(const Shape& s) {
  switch (s.rank()) {
    case 4:
      return Dims4{s[0], s[1], s[2], s[3]};
    case 2:
      return Dims4{s[0], s[1], 1, 1};
    case 1:
      return Dims4{s[0], 1, 1, 1};
    default:
      break;
  }
  throw_internal("dims4", __FILE__, __LINE__, "no [n, c, h, w] view of shape " + s.str());
}

int to_int(int64_t v, const char* what) {
  RN_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(),
           std::string(what) + " = " + std::to_string(v) + " exceeds cuDNN's 32-bit dimensions");
  return static_cast<int>(v);
}

TensorDesc::TensorDesc(Dims4 d, Layout l, DType t) {
  // cuDNN's legacy API indexes tensors with 32-bit integers.
  RN_CHECK(d.numel() <= std::numeric_limits<int>::max(),
           "a tensor of " + std::to_string(d.numel()) + " elements exceeds cuDNN's 32-bit indexing; lower the batch");
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(d_.get(), cudnn_format(l), cudnn_dtype(t), to_int(d.n, "n"), to_int(d.c, "c"),
                                         to_int(d.h, "h"), to_int(d.w, "w")));
}

BnParamDesc::BnParamDesc(const TensorDesc& x, cudnnBatchNormMode_t mode) {
  CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(d_.get(), x.get(), mode));
}

FilterDesc::FilterDesc(int64_t out, int64_t in, int64_t kh, int64_t kw, Layout l, DType t) {
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(d_.get(), cudnn_dtype(t), cudnn_format(l), to_int(out, "filter out"),
                                         to_int(in, "filter in"), to_int(kh, "filter h"), to_int(kw, "filter w")));
}

ConvDesc::ConvDesc(int64_t pad, int64_t stride, cudnnMathType_t math) : math_(math) {
  const int p = to_int(pad, "pad"), s = to_int(stride, "stride");
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d_.get(), p, p, s, s, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_CHECK(cudnnSetConvolutionMathType(d_.get(), math));
}

void ConvDesc::set_math(cudnnMathType_t math) {
  CUDNN_CHECK(cudnnSetConvolutionMathType(d_.get(), math));
  math_ = math;
}

PoolDesc::PoolDesc(cudnnPoolingMode_t mode, int64_t kh, int64_t kw, int64_t pad, int64_t stride) {
  const int p = to_int(pad, "pad"), s = to_int(stride, "stride");
  CUDNN_CHECK(cudnnSetPooling2dDescriptor(d_.get(), mode, CUDNN_PROPAGATE_NAN, to_int(kh, "window h"),
                                          to_int(kw, "window w"), p, p, s, s));
}

ReluDesc::ReluDesc() {
  CUDNN_CHECK(cudnnSetActivationDescriptor(d_.get(), CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
}

}  // namespace rn::cuda
