// Batch normalisation on oneDNN, with the ReLU optionally fused (the
// workspace then holds the ReLU mask for backward). With global_stats the
// training forward and the backward are created with use_global_stats, so
// both take mean/var as inputs (frozen BN).
//
// The residual tail (BnTail::kAddRelu) has no oneDNN primitive: the batch
// norm writes y, one pass over y adds z and applies the ReLU in place, and
// backward masks dy with y > 0 into dz (the residual's gradient, which is
// also the batch norm's output gradient) before the batch norm's backward.
// One tensor per block tail, as on the GPU, instead of the normalised
// values, their sum with z and the ReLU's output.
#include <algorithm>

#include "trainer/backend/cpu/cpu_backend.h"
#include "trainer/core/parallel_for.h"

namespace rn {
namespace {

using dnnl::normalization_flags;

class CpuBatchNorm final : public BatchNormKernel {
 public:
  CpuBatchNorm(CpuBackend& be, const Shape& s, Layout l, float eps, BnTail tail, bool global_stats)
      : be_(be), add_relu_(tail == BnTail::kAddRelu) {
    const auto x_md = be.md(s, l);
    const auto c_md = be.md(Shape{s[1]}, Layout::kNC);
    auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
    if (tail == BnTail::kRelu) flags |= normalization_flags::fuse_norm_relu;
    // Training forward and backward: batch statistics, or the given ones.
    const auto train_flags = global_stats ? flags | normalization_flags::use_global_stats : flags;

    dnnl::batch_normalization_forward::desc td(dnnl::prop_kind::forward_training, x_md, eps, train_flags);
    auto tpd = DNNL_CALL(dnnl::batch_normalization_forward::primitive_desc(td, be.attr(), be.engine()));
    ws_md_ = tpd.workspace_desc();
    has_ws_ = ws_md_.get_size() > 0;
    if (has_ws_) ws_ = be.allocate_bytes(ws_md_.get_size());
    train_ = be.prepare(dnnl::batch_normalization_forward(tpd),
                        {{DNNL_ARG_SRC, x_md}, {DNNL_ARG_SCALE, c_md}, {DNNL_ARG_SHIFT, c_md}, {DNNL_ARG_DST, x_md},
                         {DNNL_ARG_MEAN, c_md}, {DNNL_ARG_VARIANCE, c_md}, {DNNL_ARG_WORKSPACE, ws_md_}},
                        tpd.scratchpad_desc());

    dnnl::batch_normalization_forward::desc id(dnnl::prop_kind::forward_inference, x_md, eps,
                                               flags | normalization_flags::use_global_stats);
    auto ipd = DNNL_CALL(dnnl::batch_normalization_forward::primitive_desc(id, be.attr(), be.engine()));
    infer_ = be.prepare(dnnl::batch_normalization_forward(ipd),
                        {{DNNL_ARG_SRC, x_md}, {DNNL_ARG_SCALE, c_md}, {DNNL_ARG_SHIFT, c_md}, {DNNL_ARG_DST, x_md},
                         {DNNL_ARG_MEAN, c_md}, {DNNL_ARG_VARIANCE, c_md}},
                        ipd.scratchpad_desc());

    dnnl::batch_normalization_backward::desc bd(dnnl::prop_kind::backward, x_md, x_md, eps, train_flags);
    auto bpd = DNNL_CALL(dnnl::batch_normalization_backward::primitive_desc(bd, be.attr(), be.engine(), tpd));
    bwd_ = be.prepare(dnnl::batch_normalization_backward(bpd),
                      {{DNNL_ARG_SRC, x_md}, {DNNL_ARG_MEAN, c_md}, {DNNL_ARG_VARIANCE, c_md}, {DNNL_ARG_DIFF_DST, x_md},
                       {DNNL_ARG_SCALE, c_md}, {DNNL_ARG_SHIFT, c_md}, {DNNL_ARG_WORKSPACE, ws_md_}, {DNNL_ARG_DIFF_SRC, x_md},
                       {DNNL_ARG_DIFF_SCALE, c_md}, {DNNL_ARG_DIFF_SHIFT, c_md}},
                      bpd.scratchpad_desc());
  }

  void forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y, Tensor& mean, Tensor& var,
                        const Tensor* z) override {
    check_z(y, z);
    be_.run(train_, {{DNNL_ARG_SRC, x.data()},
                     {DNNL_ARG_SCALE, gamma.data()},
                     {DNNL_ARG_SHIFT, beta.data()},
                     {DNNL_ARG_DST, y.data()},
                     {DNNL_ARG_MEAN, mean.data()},
                     {DNNL_ARG_VARIANCE, var.data()},
                     {DNNL_ARG_WORKSPACE, ws_ptr()}});
    if (add_relu_) {
      add_relu(y, *z);
      y_ = y;
    }
  }

  void forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                         const Tensor& var, Tensor& y, const Tensor* z) override {
    check_z(y, z);
    be_.run(infer_, {{DNNL_ARG_SRC, x.data()},
                     {DNNL_ARG_SCALE, gamma.data()},
                     {DNNL_ARG_SHIFT, beta.data()},
                     {DNNL_ARG_MEAN, mean.data()},
                     {DNNL_ARG_VARIANCE, var.data()},
                     {DNNL_ARG_DST, y.data()}});
    if (add_relu_) add_relu(y, *z);
  }

  void backward(const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                const Tensor& var, Tensor& dx, Tensor& dgamma, Tensor& dbeta, Tensor* dz) override {
    RN_CHECK((dz != nullptr) == add_relu_, "batch norm: dz is for the bn+add+relu tail only");
    const float* g = dy.data();
    if (add_relu_) {
      RN_CHECK(!y_.empty() && dz->shape() == dy.shape() && dz->layout() == dy.layout(),
               "bn+add+relu backward: dz " + dz->shape().str() + " for dy " + dy.shape().str() +
                   (y_.empty() ? " before a training forward" : ""));
      const float* yp = y_.data();
      const float* dyp = dy.data();
      float* dzp = dz->data();
      parallel_for(dy.numel(), [=](int64_t i) { dzp[i] = yp[i] > 0.f ? dyp[i] : 0.f; });
      g = dzp;
    }
    // oneDNN 2.x expects the shift among backward's inputs even though the
    // gradient does not depend on it.
    be_.run(bwd_, {{DNNL_ARG_SRC, x.data()},
                   {DNNL_ARG_MEAN, mean.data()},
                   {DNNL_ARG_VARIANCE, var.data()},
                   {DNNL_ARG_DIFF_DST, g},
                   {DNNL_ARG_SCALE, gamma.data()},
                   {DNNL_ARG_SHIFT, beta.data()},
                   {DNNL_ARG_WORKSPACE, ws_ptr()},
                   {DNNL_ARG_DIFF_SRC, dx.data()},
                   {DNNL_ARG_DIFF_SCALE, dgamma.data()},
                   {DNNL_ARG_DIFF_SHIFT, dbeta.data()}});
  }

 private:
  const void* ws_ptr() const { return has_ws_ ? ws_.data() : nullptr; }
  void check_z(const Tensor& y, const Tensor* z) const {
    RN_CHECK((z != nullptr) == add_relu_, "batch norm: z is for the bn+add+relu tail only");
    RN_CHECK(!z || (z->shape() == y.shape() && z->layout() == y.layout()),
             "bn+add+relu: residual " + z->shape().str() + " for an output " + y.shape().str());
  }
  // y = max(y + z, 0), in place (same shape and layout: element i of one
  // is element i of the other).
  static void add_relu(Tensor& y, const Tensor& z) {
    float* yp = y.data();
    const float* zp = z.data();
    parallel_for(y.numel(), [=](int64_t i) { yp[i] = std::max(yp[i] + zp[i], 0.f); });
  }
  CpuBackend& be_;
  bool add_relu_;
  Tensor y_;  // kAddRelu: the last training forward's output (the ReLU mask)
  dnnl::memory::desc ws_md_;
  bool has_ws_ = false;
  Tensor ws_;
  DnnlExec train_, infer_, bwd_;
};

}  // namespace

std::unique_ptr<BatchNormKernel> CpuBackend::make_batchnorm(const Shape& s, Layout l, DType dtype, float eps,
                                                            BnTail tail, bool global_stats) {
  RN_CHECK(dtype == DType::kF32, "the CPU backend computes in fp32 only");
  return std::make_unique<CpuBatchNorm>(*this, s, l, eps, tail, global_stats);
}

}  // namespace rn
