// Fully connected layer (oneDNN inner product) on row-major [N, in] inputs.
#include "trainer/backend/cpu/cpu_backend.h"

namespace rn {
namespace {

class CpuLinear final : public LinearKernel {
 public:
  CpuLinear(CpuBackend& be, int64_t n, int64_t in, int64_t out) : be_(be) {
    const auto x_md = be.md(Shape{n, in}, Layout::kNC);
    const auto w_md = be.md(Shape{out, in}, Layout::kNC);
    const auto b_md = be.md(Shape{out}, Layout::kNC);
    const auto y_md = be.md(Shape{n, out}, Layout::kNC);
    dnnl::inner_product_forward::desc fd(dnnl::prop_kind::forward_training, x_md, w_md, b_md, y_md);
    auto fpd = DNNL_CALL(dnnl::inner_product_forward::primitive_desc(fd, be.attr(), be.engine()));
    fwd_ = be.prepare(dnnl::inner_product_forward(fpd),
                      {{DNNL_ARG_SRC, x_md}, {DNNL_ARG_WEIGHTS, w_md}, {DNNL_ARG_BIAS, b_md}, {DNNL_ARG_DST, y_md}},
                      fpd.scratchpad_desc());
    dnnl::inner_product_backward_data::desc bd(x_md, w_md, y_md);
    auto bpd = DNNL_CALL(dnnl::inner_product_backward_data::primitive_desc(bd, be.attr(), be.engine(), fpd));
    bwd_data_ = be.prepare(dnnl::inner_product_backward_data(bpd),
                           {{DNNL_ARG_DIFF_DST, y_md}, {DNNL_ARG_WEIGHTS, w_md}, {DNNL_ARG_DIFF_SRC, x_md}},
                           bpd.scratchpad_desc());
    dnnl::inner_product_backward_weights::desc wd(x_md, w_md, b_md, y_md);
    auto wpd = DNNL_CALL(dnnl::inner_product_backward_weights::primitive_desc(wd, be.attr(), be.engine(), fpd));
    bwd_w_ = be.prepare(dnnl::inner_product_backward_weights(wpd),
                        {{DNNL_ARG_SRC, x_md}, {DNNL_ARG_DIFF_DST, y_md}, {DNNL_ARG_DIFF_WEIGHTS, w_md},
                         {DNNL_ARG_DIFF_BIAS, b_md}},
                        wpd.scratchpad_desc());
  }

  void forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    be_.run(fwd_, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_WEIGHTS, w.data()}, {DNNL_ARG_BIAS, b.data()},
                   {DNNL_ARG_DST, y.data()}});
  }
  void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) override {
    be_.run(bwd_data_, {{DNNL_ARG_DIFF_DST, dy.data()}, {DNNL_ARG_WEIGHTS, w.data()}, {DNNL_ARG_DIFF_SRC, dx.data()}});
  }
  void backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db) override {
    be_.run(bwd_w_, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_DIFF_DST, dy.data()}, {DNNL_ARG_DIFF_WEIGHTS, dw.data()},
                     {DNNL_ARG_DIFF_BIAS, db.data()}});
  }

 private:
  CpuBackend& be_;
  DnnlExec fwd_, bwd_data_, bwd_w_;
};

}  // namespace

std::unique_ptr<LinearKernel> CpuBackend::make_linear(int64_t n, int64_t in, int64_t out) {
  return std::make_unique<CpuLinear>(*this, n, in, out);
}

}  // namespace rn
