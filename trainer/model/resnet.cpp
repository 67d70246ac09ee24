#include "trainer/model/resnet.h"

#include <cmath>
#include <random>

#include "trainer/core/error.h"

namespace rn {

ResNet::ResNet(Backend& be, const ArchSpec& arch, int64_t num_classes, ShortcutType shortcut)
    : be_(be), arch_(arch), classes_(num_classes), grads_(be) {
  arch_.shortcut = shortcut;
  const int64_t stem = arch.widths[0];
  if (arch.imagenet_stem)
    conv1_ = std::make_unique<Conv2d>(be, params_, "conv1", 3, stem, 7, 2, 3, false);
  else
    conv1_ = std::make_unique<Conv2d>(be, params_, "conv1", 3, stem, 3, 1, 1, false);
  bn1_ = std::make_unique<BatchNorm2d>(be, params_, "bn1", stem, BnTail::kRelu);
  if (arch.imagenet_stem) maxpool_ = std::make_unique<MaxPool2d>(be, 3, 2, 1);

  int64_t c = stem;
  for (size_t s = 0; s < arch.blocks.size(); ++s) {
    for (int b = 0; b < arch.blocks[s]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      const std::string name = "layer" + std::to_string(s + 1) + "." + std::to_string(b);
      block_offsets_.push_back(static_cast<size_t>(params_.flat_size()));  // the next parameter's offset
      blocks_.push_back(std::make_unique<ResidualBlock>(be, params_, name, arch.block, c, arch.widths[s], stride,
                                                        arch_.shortcut));
      block_names_.push_back(name);
      c = blocks_.back()->c_out();
    }
  }
  avgpool_ = std::make_unique<GlobalAvgPool>(be);
  fc_ = std::make_unique<Linear>(be, params_, "fc", c, num_classes);
  params_.allocate(be);
  set_grad_pool(nullptr);
  kept_.resize(parts().size());
}

std::vector<Module*> ResNet::parts() const {
  std::vector<Module*> m;
  for (Module* s : std::initializer_list<Module*>{conv1_.get(), bn1_.get(), maxpool_.get(), avgpool_.get(), fc_.get()})
    if (s) m.push_back(s);
  for (auto& b : blocks_) m.push_back(b.get());
  return m;
}

void ResNet::set_grad_pool(TensorPool* pool) {
  Module::set_grad_pool(pool ? pool : &grads_);
  for (Module* m : parts()) m->set_grad_pool(grad_pool_);
}

void ResNet::set_output_pool(TensorPool* pool) {
  Module::set_output_pool(pool);
  for (Module* m : parts()) m->set_output_pool(pool);
}

Shape ResNet::output_shape(const Shape& in) const { return Shape{in[0], classes_}; }

const Tensor& ResNet::forward(const Tensor& x, Mode mode) {
  // The images arrive as fp32 NCHW; a backend that keeps activations in
  // another layout or dtype (the GPU's NHWC bf16) gets them converted once.
  const Tensor* in = &x;
  const Layout al = be_.activation_layout(x.shape()[1]);
  if (x.layout() != al || x.dtype() != be_.activation_dtype()) {
    Tensor& t = inputs_.get(x.shape(), [&] { return be_.allocate(x.shape(), al, be_.activation_dtype()); });
    be_.copy(x, t);
    in = &t;
  }
  // With an output pool, an eval forward hands each module's input back
  // once it is read (except the images), and the last logits once the next
  // forward starts; a training forward keeps every output for backward,
  // which hands each back after its module's backward.
  TensorPool* pool = output_pool_;
  RN_CHECK(!kept_pending_,
           "a training forward's activations are still held: backward must come before the next forward");
  if (pool && !logits_.empty()) {
    pool->release(logits_);
    logits_ = Tensor();
  }
  const bool keep = pool && mode == Mode::kTrain;
  size_t k = 0;
  auto step = [&](Module& m, const Tensor* h) {
    const Tensor& y = m.forward(*h, mode);
    if (keep)
      kept_[k++] = &y;
    else if (pool && h != in)
      pool->release(*h);
    return &y;
  };
  const Tensor* h = step(*bn1_, step(*conv1_, in));
  if (maxpool_) h = step(*maxpool_, h);
  for (auto& b : blocks_) h = step(*b, h);
  h = step(*fc_, step(*avgpool_, h));
  kept_pending_ = keep;
  if (pool && !keep) {
    logits_ = *h;
    RN_CHECK(pool->held() == 1,
             std::to_string(pool->held()) + " activations held after a forward, not just the logits");
  }
  return *h;
}

const Tensor& ResNet::backward(const Tensor& dy) {
  RN_CHECK(output_pool_ == nullptr || kept_pending_,
           "backward of a network with an output pool needs a training forward before it (an eval forward keeps "
           "nothing for backward)");
  auto ready = [&](size_t offset) {
    if (grad_ready_) grad_ready_(offset);
  };
  // Every module's input gradient comes from the pool and goes back once
  // the module before has read it (dy is the caller's).
  // With an output pool, a module's output goes back after its own
  // backward: the last to read it (its consumer's backward comes first).
  TensorPool& pool = *grad_pool_;
  size_t k = kept_pending_ ? kept_.size() : 0;
  auto back = [&](Module& m, const Tensor* d) {
    const Tensor& next = m.backward(*d);
    if (d != &dy) pool.release(*d);
    if (kept_pending_) output_pool_->release(*kept_[--k]);
    return &next;
  };
  const Tensor* d = back(*fc_, &dy);
  ready(fc_->weight().offset);
  d = back(*avgpool_, d);
  for (size_t i = blocks_.size(); i-- > 0;) {
    d = back(*blocks_[i], d);
    ready(block_offsets_[i]);
  }
  if (maxpool_) d = back(*maxpool_, d);
  d = back(*bn1_, d);
  const Tensor& dx = *back(*conv1_, d);  // empty: conv1 computes no input gradient
  ready(0);
  RN_CHECK(k == 0, "backward visited fewer modules than forward");
  kept_pending_ = false;
  RN_CHECK(pool.held() == 0, std::to_string(pool.held()) + " activation gradient(s) not handed back");
  RN_CHECK(!output_pool_ || output_pool_->held() == 0,
           std::to_string(output_pool_ ? output_pool_->held() : 0) + " activation(s) not handed back");
  return dx;
}

int64_t ResNet::macs(const Shape& in) const {
  int64_t total = 0;
  for (const auto& r : summary(in[2])) total += r.macs;
  return total;
}

void ResNet::initialize(uint64_t seed, bool zero_init_residual) {
  std::mt19937_64 rng(seed);
  std::vector<float> host;
  auto upload = [&](Tensor& t) { be_.from_host(host.data(), t); };
  for (auto& p : params_.params()) {
    host.assign(static_cast<size_t>(p.shape.numel()), 0.f);
    const bool is_fc = p.name.rfind("fc.", 0) == 0;
    if (is_fc) {
      // PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
      const double bound = 1.0 / std::sqrt(double(fc_->weight().shape[1]));
      std::uniform_real_distribution<double> u(-bound, bound);
      for (auto& v : host) v = static_cast<float>(u(rng));
    } else if (p.shape.rank() == 4) {
      const double fan_out = double(p.shape[0] * p.shape[2] * p.shape[3]);
      std::normal_distribution<double> n(0.0, std::sqrt(2.0 / fan_out));
      for (auto& v : host) v = static_cast<float>(n(rng));
    } else if (p.name.ends_with(".weight")) {
      host.assign(host.size(), 1.f);  // BN gamma
    }
    upload(p.value);
  }
  for (auto& b : params_.buffers()) {
    const bool is_var = b.name.find("running_var") != std::string::npos;
    host.assign(static_cast<size_t>(b.shape.numel()), is_var ? 1.f : 0.f);
    upload(b.value);
  }
  if (zero_init_residual)
    for (auto& b : blocks_) be_.fill(b->last_bn().gamma().value, 0.f);
  be_.fill(params_.flat_grads(), 0.f);
}

void ResNet::set_frozen_bn(bool frozen) {
  bn1_->set_frozen(frozen);
  for (auto& b : blocks_) b->set_frozen_bn(frozen);
}

std::vector<SummaryRow> ResNet::summary(int64_t image_size) const {
  auto count = [&](const std::string& prefix) {
    int64_t n = 0;
    for (const auto& p : params_.params())
      if (p.name.rfind(prefix + ".", 0) == 0) n += p.shape.numel();
    return n;
  };
  std::vector<SummaryRow> rows;
  Shape s{1, 3, image_size, image_size};
  Shape o = conv1_->output_shape(s);
  rows.push_back({"conv1", conv1_->kernel() == 7 ? "conv 7x7/2" : "conv 3x3/1", o, count("conv1"), conv1_->macs(s)});
  rows.push_back({"bn1", "bn+relu", o, count("bn1"), 0});
  s = o;
  if (maxpool_) {
    s = maxpool_->output_shape(s);
    rows.push_back({"maxpool", "maxpool 3x3/2", s, 0, 0});
  }
  for (size_t i = 0; i < blocks_.size(); ++i) {
    o = blocks_[i]->output_shape(s);
    rows.push_back({block_names_[i], blocks_[i]->kind(), o, count(block_names_[i]), blocks_[i]->macs(s)});
    s = o;
  }
  rows.push_back({"avgpool", "global avgpool", avgpool_->output_shape(s), 0, 0});
  rows.push_back({"fc", "fc", Shape{1, classes_}, count("fc"), fc_->macs(avgpool_->output_shape(s))});
  return rows;
}

}  // namespace rn
