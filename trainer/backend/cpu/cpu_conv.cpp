// Convolution on oneDNN: forward, backward-data, backward-weights.
// Weights arrive in OIHW; each direction may prefer its own blocked weight
// layout, so each call reorders them into the backend's call buffer (one
// copy of the largest layer's weights for the whole network, not three
// per convolution and batch shape: resnet50's would be ~280 MB).
#include <optional>

#include "trainer/backend/cpu/cpu_backend.h"

namespace rn {
namespace {

using dnnl::memory;

class CpuConv final : public ConvKernel {
 public:
  CpuConv(CpuBackend& be, const ConvGeom& g, Layout xl, Layout yl, bool need_dx) : be_(be) {
    const memory::dims strides{g.stride, g.stride}, pad{g.pad, g.pad};
    const auto x_md = be.md(Shape{g.n, g.c_in, g.h_in, g.w_in}, xl);
    const auto y_md = be.md(Shape{g.n, g.c_out, g.h_out(), g.w_out()}, yl);
    const Shape w_shape{g.c_out, g.c_in, g.kernel, g.kernel};
    w_oihw_md_ = be.md(w_shape, Layout::kNCHW);
    const memory::desc w_any(w_oihw_md_.dims(), memory::data_type::f32, memory::format_tag::any);
    const auto alg = dnnl::algorithm::convolution_direct;

    dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, alg, x_md, w_any, y_md, strides, pad, pad);
    auto fpd = DNNL_CALL(dnnl::convolution_forward::primitive_desc(fd, be.attr(), be.engine()));
    fwd_ = be.prepare(dnnl::convolution_forward(fpd),
                      {{DNNL_ARG_SRC, x_md}, {DNNL_ARG_WEIGHTS, fpd.weights_desc()}, {DNNL_ARG_DST, y_md}},
                      fpd.scratchpad_desc());
    fwd_w_ = weights_copy(fpd.weights_desc(), /*to_kernel=*/true);

    if (need_dx) {
      dnnl::convolution_backward_data::desc bd(alg, x_md, w_any, y_md, strides, pad, pad);
      auto bpd = DNNL_CALL(dnnl::convolution_backward_data::primitive_desc(bd, be.attr(), be.engine(), fpd));
      bwd_data_ = be.prepare(dnnl::convolution_backward_data(bpd),
                             {{DNNL_ARG_DIFF_DST, y_md}, {DNNL_ARG_WEIGHTS, bpd.weights_desc()}, {DNNL_ARG_DIFF_SRC, x_md}},
                             bpd.scratchpad_desc());
      bwd_data_w_ = weights_copy(bpd.weights_desc(), true);
    }
    dnnl::convolution_backward_weights::desc wd(alg, x_md, w_any, y_md, strides, pad, pad);
    auto wpd = DNNL_CALL(dnnl::convolution_backward_weights::primitive_desc(wd, be.attr(), be.engine(), fpd));
    bwd_w_ = be.prepare(dnnl::convolution_backward_weights(wpd),
                        {{DNNL_ARG_SRC, x_md}, {DNNL_ARG_DIFF_DST, y_md}, {DNNL_ARG_DIFF_WEIGHTS, wpd.diff_weights_desc()}},
                        wpd.scratchpad_desc());
    dw_ = weights_copy(wpd.diff_weights_desc(), false);
  }

  void forward(const Tensor& x, const Tensor& w, Tensor& y) override {
    be_.run(fwd_, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_WEIGHTS, to_kernel(fwd_w_, w)}, {DNNL_ARG_DST, y.data()}});
  }

  void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) override {
    RN_CHECK(bwd_data_.has_value(), "convolution built without input gradient");
    be_.run(*bwd_data_, {{DNNL_ARG_DIFF_DST, dy.data()}, {DNNL_ARG_WEIGHTS, to_kernel(bwd_data_w_, w)},
                         {DNNL_ARG_DIFF_SRC, dx.data()}});
  }

  void backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw) override {
    void* target = dw_ ? be_.call_buffer(dw_->bytes) : dw.data();
    be_.run(bwd_w_, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_DIFF_DST, dy.data()}, {DNNL_ARG_DIFF_WEIGHTS, target}});
    if (dw_) be_.run(dw_->reorder, {{DNNL_ARG_FROM, target}, {DNNL_ARG_TO, dw.data()}});
  }

 private:
  // Where a direction wants a weight layout other than OIHW: the reorder
  // between the two, through `bytes` of the call buffer.
  struct WeightsCopy {
    DnnlExec reorder;
    size_t bytes;
  };

  std::optional<WeightsCopy> weights_copy(const memory::desc& kernel_md, bool to_kernel) {
    if (kernel_md == w_oihw_md_) return std::nullopt;
    be_.reserve_call_buffer(kernel_md.get_size());
    return WeightsCopy{to_kernel ? be_.make_reorder(w_oihw_md_, kernel_md) : be_.make_reorder(kernel_md, w_oihw_md_),
                       kernel_md.get_size()};
  }

  const void* to_kernel(std::optional<WeightsCopy>& c, const Tensor& w) {
    if (!c) return w.data();
    void* buf = be_.call_buffer(c->bytes);
    be_.run(c->reorder, {{DNNL_ARG_FROM, w.data()}, {DNNL_ARG_TO, buf}});
    return buf;
  }

  CpuBackend& be_;
  memory::desc w_oihw_md_;
  DnnlExec fwd_, bwd_w_;
  std::optional<DnnlExec> bwd_data_;
  std::optional<WeightsCopy> fwd_w_, bwd_data_w_, dw_;
};

}  // namespace

std::unique_ptr<ConvKernel> CpuBackend::make_conv(const ConvGeom& g, Layout x, Layout y, bool need_dx) {
  return std::make_unique<CpuConv>(*this, g, x, y, need_dx);
}

}  // namespace rn
