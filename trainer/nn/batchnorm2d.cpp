#include "trainer/nn/batchnorm2d.h"

#include "trainer/core/error.h"

namespace rn {

BatchNorm2d::BatchNorm2d(Backend& be, ParamStore& ps, const std::string& name, int64_t channels, BnTail tail, float eps,
                         float momentum)
    : be_(be), c_(channels), tail_(tail), eps_(eps), momentum_(momentum) {
  gamma_ = ps.declare_param(name + ".weight", Shape{channels}, true);
  beta_ = ps.declare_param(name + ".bias", Shape{channels}, true);
  rmean_ = ps.declare_buffer(name + ".running_mean", Shape{channels});
  rvar_ = ps.declare_buffer(name + ".running_var", Shape{channels});
  nbt_ = ps.declare_buffer(name + ".num_batches_tracked", Shape{1});
  mean_ = be.allocate(Shape{channels}, Layout::kNC);
  var_ = be.allocate(Shape{channels}, Layout::kNC);
  one_ = be.allocate(Shape{1}, Layout::kNC);
  be.fill(one_, 1.f);
}

void BatchNorm2d::set_frozen(bool frozen) {
  RN_CHECK(cur_ == nullptr, gamma_->name + ": set_frozen must be called before the first forward");
  frozen_ = frozen;
}

BatchNorm2d::Plan BatchNorm2d::make_plan(const Tensor& x) {
  RN_CHECK(x.shape().rank() == 4 && x.shape()[1] == c_,
           gamma_->name + " expects " + std::to_string(c_) + " channels, got " + x.shape().str());
  Plan p;
  p.kernel = be_.make_batchnorm(x.shape(), x.layout(), x.dtype(), eps_, tail_,
                                /*global_stats=*/frozen_);
  return p;
}

const Tensor& BatchNorm2d::forward(const Tensor& x, Mode mode) {
  RN_CHECK(tail_ != BnTail::kAddRelu, gamma_->name + ": a bn+add+relu needs forward_add");
  return run_forward(x, nullptr, mode);
}

const Tensor& BatchNorm2d::forward_add(const Tensor& x, const Tensor& z, Mode mode) {
  RN_CHECK(tail_ == BnTail::kAddRelu, gamma_->name + ": forward_add on a BN without the add");
  RN_CHECK(z.shape() == x.shape() && z.layout() == x.layout() && z.dtype() == x.dtype(),
           gamma_->name + ": residual " + z.shape().str() + " does not match " + x.shape().str());
  return run_forward(x, &z, mode);
}

const Tensor& BatchNorm2d::run_forward(const Tensor& x, const Tensor* z, Mode mode) {
  cur_ = &plans_.get(x.shape(), [&] { return make_plan(x); });
  x_ = x;
  z_ = z;
  Tensor& y = output_tensor(be_, cur_->y, x.shape(), x.layout(), x.dtype());
  if (mode == Mode::kEval) {
    cur_->kernel->forward_inference(x, gamma_->value, beta_->value, rmean_->value, rvar_->value, y, z);
    return y;
  }
  if (frozen_) {
    // Normalise with the running statistics; they stay as they are.
    cur_->kernel->forward_training(x, gamma_->value, beta_->value, y, rmean_->value, rvar_->value, z);
    return y;
  }
  cur_->kernel->forward_training(x, gamma_->value, beta_->value, y, mean_, var_, z);
  // Running statistics as PyTorch keeps them: the variance is unbiased.
  const double count = double(x.shape()[0]) * double(x.shape()[2]) * double(x.shape()[3]);
  const float unbias = count > 1 ? float(count / (count - 1)) : 1.f;
  be_.axpby(1.f - momentum_, rmean_->value, momentum_, mean_);
  be_.axpby(1.f - momentum_, rvar_->value, momentum_ * unbias, var_);
  be_.axpby(1.f, nbt_->value, 1.f, one_);  // num_batches_tracked += 1
  return y;
}

const Tensor& BatchNorm2d::backward(const Tensor& dy) {
  RN_CHECK(cur_ != nullptr, "backward before forward in " + gamma_->name);
  const Tensor& mean = frozen_ ? rmean_->value : mean_;
  const Tensor& var = frozen_ ? rvar_->value : var_;
  Tensor& dx = grad_like(be_, cur_->dx, x_);
  Tensor* dz = tail_ == BnTail::kAddRelu ? &grad_like(be_, cur_->dz, x_) : nullptr;
  cur_->kernel->backward(x_, dy, gamma_->value, beta_->value, mean, var, dx, gamma_->grad, beta_->grad, dz);
  return cur_->dx;
}

}  // namespace rn
