// Max and average pooling on oneDNN. Max pooling keeps its arg-max
// workspace from the training forward for backward.
#include "trainer/backend/cpu/cpu_backend.h"

namespace rn {
namespace {

class CpuPool final : public PoolKernel {
 public:
  CpuPool(CpuBackend& be, const PoolGeom& g, Layout xl, Layout yl) : be_(be) {
    const auto x_md = be.md(Shape{g.n, g.c, g.h_in, g.w_in}, xl);
    const auto y_md = be.md(Shape{g.n, g.c, g.h_out(), g.w_out()}, yl);
    const dnnl::memory::dims strides{g.stride, g.stride}, kernel{g.kernel_h, g.kernel_w}, pad{g.pad, g.pad};
    const auto alg = g.kind == PoolKind::kMax ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_exclude_padding;

    dnnl::pooling_forward::desc td(dnnl::prop_kind::forward_training, alg, x_md, y_md, strides, kernel, pad, pad);
    auto tpd = DNNL_CALL(dnnl::pooling_forward::primitive_desc(td, be.attr(), be.engine()));
    const auto ws_md = tpd.workspace_desc();
    if (ws_md.get_size() > 0) ws_ = be.allocate_bytes(ws_md.get_size());
    train_ = be.prepare(dnnl::pooling_forward(tpd), {{DNNL_ARG_SRC, x_md}, {DNNL_ARG_DST, y_md}, {DNNL_ARG_WORKSPACE, ws_md}},
                        tpd.scratchpad_desc());

    dnnl::pooling_forward::desc id(dnnl::prop_kind::forward_inference, alg, x_md, y_md, strides, kernel, pad, pad);
    auto ipd = DNNL_CALL(dnnl::pooling_forward::primitive_desc(id, be.attr(), be.engine()));
    infer_ = be.prepare(dnnl::pooling_forward(ipd), {{DNNL_ARG_SRC, x_md}, {DNNL_ARG_DST, y_md}}, ipd.scratchpad_desc());

    dnnl::pooling_backward::desc bd(alg, x_md, y_md, strides, kernel, pad, pad);
    auto bpd = DNNL_CALL(dnnl::pooling_backward::primitive_desc(bd, be.attr(), be.engine(), tpd));
    bwd_ = be.prepare(dnnl::pooling_backward(bpd),
                      {{DNNL_ARG_DIFF_DST, y_md}, {DNNL_ARG_DIFF_SRC, x_md}, {DNNL_ARG_WORKSPACE, ws_md}},
                      bpd.scratchpad_desc());
  }

  void forward(const Tensor& x, Tensor& y, bool training) override {
    if (training)
      be_.run(train_, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_DST, y.data()}, {DNNL_ARG_WORKSPACE, ws_ptr()}});
    else
      be_.run(infer_, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_DST, y.data()}});
  }

  void backward(const Tensor& dy, Tensor& dx) override {
    be_.run(bwd_, {{DNNL_ARG_DIFF_DST, dy.data()}, {DNNL_ARG_DIFF_SRC, dx.data()}, {DNNL_ARG_WORKSPACE, ws_ptr()}});
  }

 private:
  const void* ws_ptr() const { return ws_.empty() ? nullptr : ws_.data(); }
  CpuBackend& be_;
  Tensor ws_;
  DnnlExec train_, infer_, bwd_;
};

}  // namespace

std::unique_ptr<PoolKernel> CpuBackend::make_pool(const PoolGeom& g, Layout x, Layout y) {
  return std::make_unique<CpuPool>(*this, g, x, y);
}

}  // namespace rn
