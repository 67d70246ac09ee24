#include "trainer/nn/pool2d.h"

#include "trainer/core/error.h"

namespace rn {

Pool2d::Pool2d(Backend& be, PoolKind kind, int64_t kernel, int64_t stride, int64_t pad, bool global)
    : be_(be), kind_(kind), k_(kernel), stride_(stride), pad_(pad), global_(global) {}

PoolGeom Pool2d::geom(const Shape& in) const {
  if (global_) return PoolGeom{in[0], in[1], in[2], in[3], in[2], in[3], 1, 0, kind_};
  return PoolGeom{in[0], in[1], in[2], in[3], k_, k_, stride_, pad_, kind_};
}

Shape Pool2d::output_shape(const Shape& in) const {
  if (global_) return Shape{in[0], in[1]};
  const PoolGeom g = geom(in);
  return Shape{in[0], in[1], g.h_out(), g.w_out()};
}

const Tensor& Pool2d::forward(const Tensor& x, Mode mode) {
  cur_ = &plans_.get(x.shape(), [&] {
    RN_CHECK(x.shape().rank() == 4, "pooling needs a 4-D input, got " + x.shape().str());
    const PoolGeom g = geom(x.shape());
    Plan p;
    p.kernel = be_.make_pool(g, x.layout(), x.layout());
    // The global pool hands fp32 features to the classifier whatever the
    // activations' dtype (mixed precision keeps the fc in fp32).
    p.y = be_.allocate(Shape{g.n, g.c, g.h_out(), g.w_out()}, x.layout(), global_ ? DType::kF32 : x.dtype());
    // A 1x1 map in nChw{8,16}c or NHWC is laid out exactly as row-major [N, C].
    p.y_out = global_ ? p.y.view(Shape{g.n, g.c}, Layout::kNC) : p.y;
    return p;
  });
  x_ = x;
  cur_->kernel->forward(x, cur_->y, mode == Mode::kTrain);
  return cur_->y_out;
}

const Tensor& Pool2d::backward(const Tensor& dy) {
  RN_CHECK(cur_ != nullptr, "pooling backward before forward");
  // dy may arrive as [N, C] for the global pool: same bytes as [N, C, 1, 1].
  const Tensor dy4 = global_ ? dy.view(cur_->y.shape(), cur_->y.layout()) : dy;
  cur_->kernel->backward(dy4, grad_like(be_, cur_->dx, x_));
  return cur_->dx;
}

}  // namespace rn
