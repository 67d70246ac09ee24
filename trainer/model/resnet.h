// A ResNet built from an ArchSpec: stem, residual stages, global average
// pool, fully connected classifier. Parameter names match torchvision's
// (conv1.weight, layer1.0.bn1.running_mean, fc.bias, ...).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trainer/model/arch.h"
#include "trainer/model/residual_block.h"
#include "trainer/nn/linear.h"
#include "trainer/nn/pool2d.h"

namespace rn {

struct SummaryRow {
  std::string name, kind;
  Shape output;        // per batch of 1
  int64_t params = 0;  // trainable elements in this row's modules
  int64_t macs = 0;    // multiply-adds per image
};

class ResNet : public Module {
 public:
  // shortcut overrides the arch's own (option A/B/none).
  ResNet(Backend& be, const ArchSpec& arch, int64_t num_classes, ShortcutType shortcut);
  ResNet(Backend& be, const ArchSpec& arch, int64_t num_classes) : ResNet(be, arch, num_classes, arch.shortcut) {}

  Shape output_shape(const Shape& in) const override;
  // x: [N, 3, H, W] plain NCHW. Returns logits [N, classes].
  const Tensor& forward(const Tensor& x, Mode mode) override;
  // dy: d(loss)/d(logits). Fills every parameter gradient. Returns an
  // empty tensor (the images need no gradient).
  const Tensor& backward(const Tensor& dy) override;
  // Called during backward each time the gradients of every parameter at
  // flat element offset >= `offset` are final (after the classifier, after
  // each residual block, after the stem: the offset only decreases). The
  // gradient all-reduce starts buckets from it while backward continues.
  void set_grad_ready_callback(std::function<void(size_t offset)> cb) { grad_ready_ = std::move(cb); }
  const std::function<void(size_t offset)>& grad_ready_callback() const { return grad_ready_; }
  int64_t macs(const Shape& in) const override;
  std::string kind() const override { return "resnet"; }

  // He (Kaiming) normal init for convolutions (fan_out, as torchvision),
  // BN gamma 1 / beta 0 (gamma 0 on each block's last BN when
  // zero_init_residual), PyTorch's default uniform init for fc.
  void initialize(uint64_t seed, bool zero_init_residual);
  // Frozen batch norm (model.frozen_bn): every BN (bn1 and those of all
  // blocks) normalises with its running statistics in training too and does
  // not update them; see BatchNorm2d::set_frozen. Before the first forward.
  void set_frozen_bn(bool frozen);

  ParamStore& params() { return params_; }
  Backend& backend() { return be_; }
  const ArchSpec& arch() const { return arch_; }
  int64_t num_classes() const { return classes_; }
  std::vector<SummaryRow> summary(int64_t image_size) const;
  // The network takes every module's input gradient from its own pool
  // unless given another (nullptr: its own again), which must outlive it.
  void set_grad_pool(TensorPool* pool) override;
  // Storage of the activation gradients (see TensorPool): its size once a
  // backward pass has run.
  const TensorPool& grad_pool() const { return *grad_pool_; }
  TensorPool& grad_pool() { return *grad_pool_; }
  // With a pool, every module's output comes from it. An eval forward
  // hands each back once the next module has read it, so it holds a few
  // activations instead of every layer's; the logits stay held until the
  // next forward (resnet-infer, --eval-only). A training forward keeps them
  // all, and backward hands each back after its module's backward, which
  // must follow before the next forward: given the network's gradient pool
  // (grad_pool()), activations and activation gradients share storage, as
  // backward frees the one while it needs the other (resnet-train). Set
  // once, before the first forward; the pool serves this network alone and
  // outlives it.
  void set_output_pool(TensorPool* pool) override;

 private:
  Backend& be_;
  ArchSpec arch_;
  int64_t classes_;
  ParamStore params_;
  std::unique_ptr<Conv2d> conv1_;
  std::unique_ptr<BatchNorm2d> bn1_;
  std::unique_ptr<MaxPool2d> maxpool_;
  std::vector<std::unique_ptr<ResidualBlock>> blocks_;
  std::vector<std::string> block_names_;
  std::unique_ptr<GlobalAvgPool> avgpool_;
  std::unique_ptr<Linear> fc_;
  std::vector<size_t> block_offsets_;  // first parameter offset of each block
  std::vector<Module*> parts() const;  // every module of the network
  std::function<void(size_t)> grad_ready_;
  ShapeCache<Tensor> inputs_;  // the input in the activations' layout/dtype, where they differ
  TensorPool grads_;           // the default pool of every module's input gradient
  Tensor logits_;              // with an output pool: the last eval forward's, still held
  // With an output pool, a training forward's module outputs (in forward
  // order, sized once), held until backward hands them back.
  std::vector<const Tensor*> kept_;
  bool kept_pending_ = false;
};

}  // namespace rn
