// ReLU on oneDNN; backward reads the output, so the input may be reused.
#include "trainer/backend/cpu/cpu_backend.h"

namespace rn {
namespace {

class CpuRelu final : public ReluKernel {
 public:
  CpuRelu(CpuBackend& be, const Shape& s, Layout l) : be_(be) {
    const auto md = be.md(s, l);
    const auto alg = dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
    dnnl::eltwise_forward::desc fd(dnnl::prop_kind::forward_training, alg, md, 0.f, 0.f);
    auto fpd = DNNL_CALL(dnnl::eltwise_forward::primitive_desc(fd, be.attr(), be.engine()));
    fwd_ = be.prepare(dnnl::eltwise_forward(fpd), {{DNNL_ARG_SRC, md}, {DNNL_ARG_DST, md}}, fpd.scratchpad_desc());
    dnnl::eltwise_backward::desc bd(alg, md, md, 0.f, 0.f);
    auto bpd = DNNL_CALL(dnnl::eltwise_backward::primitive_desc(bd, be.attr(), be.engine(), fpd));
    bwd_ = be.prepare(dnnl::eltwise_backward(bpd), {{DNNL_ARG_DST, md}, {DNNL_ARG_DIFF_DST, md}, {DNNL_ARG_DIFF_SRC, md}},
                      bpd.scratchpad_desc());
  }
  void forward(const Tensor& x, Tensor& y) override {
    be_.run(fwd_, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_DST, y.data()}});
  }
  void backward(const Tensor& y, const Tensor& dy, Tensor& dx) override {
    be_.run(bwd_, {{DNNL_ARG_DST, y.data()}, {DNNL_ARG_DIFF_DST, dy.data()}, {DNNL_ARG_DIFF_SRC, dx.data()}});
  }

 private:
  CpuBackend& be_;
  DnnlExec fwd_, bwd_;
};

}  // namespace

std::unique_ptr<ReluKernel> CpuBackend::make_relu(const Shape& s, Layout l) {
  return std::make_unique<CpuRelu>(*this, s, l);
}

}  // namespace rn
