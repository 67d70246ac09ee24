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
    p.y_shape = Shape{g.n, g.c, g.h_out(), g.w_out()};
    p.y_layout = x.layout();
    // The global pool hands fp32 features to the classifier whatever the
    // activations' dtype (mixed precision keeps the fc in fp32).
    p.y_dtype = global_ ? DType::kF32 : x.dtype();
    return p;
  });
  x_ = x;
  Tensor& y = output_tensor(be_, cur_->y, cur_->y_shape, cur_->y_layout, cur_->y_dtype);
  cur_->kernel->forward(x, y, mode == Mode::kTrain);
  // A 1x1 map in nChw{8,16}c or NHWC is laid out exactly as row-major [N, C].
  cur_->y_out = global_ ? y.view(Shape{y.shape()[0], y.shape()[1]}, Layout::kNC) : y;
  return cur_->y_out;
}

const Tensor& Pool2d::backward(const Tensor& dy) {
  RN_CHECK(cur_ != nullptr, "pooling backward before forward");
  // dy may arrive as [N, C] for the global pool: same bytes as [N, C, 1, 1].
  const Tensor dy4 = global_ ? dy.view(cur_->y_shape, cur_->y_layout) : dy;
  cur_->kernel->backward(dy4, grad_like(be_, cur_->dx, x_));
  return cur_->dx;
}

}  // namespace rn
