#include "trainer/model/residual_block.h"

#include "trainer/core/error.h"

namespace rn {

ResidualBlock::ResidualBlock(Backend& be, ParamStore& ps, const std::string& prefix, BlockType type, int64_t c_in,
                             int64_t planes, int64_t stride, ShortcutType shortcut)
    : be_(be), type_(type), shortcut_(shortcut) {
  auto conv = [&](int i, int64_t ci, int64_t co, int64_t k, int64_t s) {
    convs_.push_back(std::make_unique<Conv2d>(be, ps, prefix + ".conv" + std::to_string(i), ci, co, k, s, k / 2));
  };
  if (type == BlockType::kBasic) {
    c_out_ = planes;
    conv(1, c_in, planes, 3, stride);
    conv(2, planes, planes, 3, 1);
  } else {
    c_out_ = planes * 4;
    conv(1, c_in, planes, 1, 1);
    conv(2, planes, planes, 3, stride);
    conv(3, planes, c_out_, 1, 1);
  }
  for (size_t i = 0; i < convs_.size(); ++i) {
    const bool last = i + 1 == convs_.size();
    // The last BN adds the shortcut and applies the block's ReLU itself.
    const BnTail tail = last && shortcut != ShortcutType::kNone ? BnTail::kAddRelu : BnTail::kRelu;
    bns_.push_back(
        std::make_unique<BatchNorm2d>(be, ps, prefix + ".bn" + std::to_string(i + 1), convs_[i]->c_out(), tail));
  }
  const bool reshapes = stride != 1 || c_in != c_out_;
  if (reshapes && shortcut == ShortcutType::kProjection) {
    proj_conv_ = std::make_unique<Conv2d>(be, ps, prefix + ".downsample.0", c_in, c_out_, 1, stride, 0);
    proj_bn_ = std::make_unique<BatchNorm2d>(be, ps, prefix + ".downsample.1", c_out_);
  } else if (reshapes && shortcut == ShortcutType::kPadIdentity) {
    pad_ = std::make_unique<ShortcutPad>(be, c_out_, stride);
  }
}

std::vector<Module*> ResidualBlock::parts() const {
  std::vector<Module*> m;
  for (auto& c : convs_) m.push_back(c.get());
  for (auto& b : bns_) m.push_back(b.get());
  for (Module* s : std::initializer_list<Module*>{proj_conv_.get(), proj_bn_.get(), pad_.get()})
    if (s) m.push_back(s);
  return m;
}

void ResidualBlock::set_grad_pool(TensorPool* pool) {
  Module::set_grad_pool(pool);
  for (Module* m : parts()) m->set_grad_pool(pool);
}

void ResidualBlock::set_output_pool(TensorPool* pool) {
  Module::set_output_pool(pool);
  for (Module* m : parts()) m->set_output_pool(pool);
}

void ResidualBlock::set_frozen_bn(bool frozen) {
  for (auto& bn : bns_) bn->set_frozen(frozen);
  if (proj_bn_) proj_bn_->set_frozen(frozen);
}

std::string ResidualBlock::kind() const {
  std::string k = type_ == BlockType::kBasic ? "basic" : "bottleneck";
  if (shortcut_ == ShortcutType::kNone) return k + " (plain)";
  if (proj_conv_) return k + " +proj";
  if (pad_) return k + " +pad";
  return k;
}

Shape ResidualBlock::output_shape(const Shape& in) const {
  Shape s = in;
  for (const auto& c : convs_) s = c->output_shape(s);
  return s;
}

int64_t ResidualBlock::macs(const Shape& in) const {
  int64_t total = 0;
  Shape s = in;
  for (const auto& c : convs_) {
    total += c->macs(s);
    s = c->output_shape(s);
  }
  if (proj_conv_) total += proj_conv_->macs(in);
  return total;
}

const Tensor& ResidualBlock::forward(const Tensor& x, Mode mode) {
  // With an output pool, an eval forward hands inner outputs back as soon
  // as their consumer is queued (x stays until the shortcut); a training
  // forward keeps them for backward, which hands each back once the last
  // backward reading it is queued.
  const bool keep = output_pool_ && mode == Mode::kTrain;
  auto consumed = [&](const Tensor& t) {
    if (!keep) done(t);
  };
  const size_t last = convs_.size() - 1;
  const Tensor* h = &x;
  for (size_t i = 0; i < last; ++i) {
    const Tensor& c = convs_[i]->forward(*h, mode);
    if (h != &x) consumed(*h);
    h = &bns_[i]->forward(c, mode);
    consumed(c);
    kept_.conv[i] = &c;
    kept_.bn[i] = h;
  }
  const Tensor& c = convs_[last]->forward(*h, mode);
  if (h != &x) consumed(*h);
  kept_.conv[last] = &c;
  kept_.pending = keep;
  if (shortcut_ == ShortcutType::kNone) {
    const Tensor& y = bns_[last]->forward(c, mode);  // relu(bn(c))
    consumed(c);
    return y;
  }
  const Tensor* s = &x;
  kept_.proj = nullptr;
  if (proj_conv_) {
    const Tensor& p = proj_conv_->forward(x, mode);
    s = &proj_bn_->forward(p, mode);
    consumed(p);
    kept_.proj = &p;
  }
  if (pad_) s = &pad_->forward(x, mode);
  kept_.shortcut = s != &x ? s : nullptr;
  cur_ = &plans_.get(x.shape(), [] { return Plan{}; });
  const Tensor& y = bns_[last]->forward_add(c, *s, mode);  // relu(bn(c) + s) in one kernel
  consumed(c);
  if (s != &x) consumed(*s);
  return y;
}

const Tensor& ResidualBlock::backward(const Tensor& dy) {
  // The last BN's backward takes dy through the ReLU and hands out both the
  // main-path gradient and, with a shortcut, the shortcut's (dz). Gradients
  // from the pool go back as soon as their consumer is queued: each conv's
  // and BN's once the layer before has read it, dz once the shortcut path
  // and the sum have. Outputs a training forward kept go back once the
  // last backward that reads them is queued: a conv's output and its BN's
  // after that BN's backward (the BN's after the next conv's, which runs
  // first); the block's output stays the caller's.
  RN_CHECK(!output_pool_ || kept_.pending, "block backward without a training forward before it");
  auto release = [&](const Tensor* t) {
    if (kept_.pending && t) done(*t);
  };
  const size_t last = convs_.size() - 1;
  const Tensor* d = &dy;
  for (size_t i = convs_.size(); i-- > 0;) {
    const Tensor& d_bn = bns_[i]->backward(*d);
    if (d != &dy) drop(*d);
    release(kept_.conv[i]);
    if (i < last) release(kept_.bn[i]);
    d = &convs_[i]->backward(d_bn);
    drop(d_bn);
  }
  if (shortcut_ == ShortcutType::kNone) {
    kept_.pending = false;
    return *d;
  }

  RN_CHECK(cur_ != nullptr, "block backward before forward");
  const Tensor& dz = bns_.back()->dz();
  const Tensor* ds = &dz;
  if (proj_conv_) {
    const Tensor& d_bn = proj_bn_->backward(dz);
    release(kept_.proj);
    release(kept_.shortcut);
    ds = &proj_conv_->backward(d_bn);
    drop(d_bn);
  }
  if (pad_) {
    ds = &pad_->backward(dz);
    release(kept_.shortcut);
  }
  kept_.pending = false;
  Tensor& dx = grad_like(be_, cur_->dx, *d);
  be_.add(*d, *ds, dx);
  drop(*d);
  if (ds != &dz) drop(*ds);
  drop(dz);
  return dx;
}

}  // namespace rn
