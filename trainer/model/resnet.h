// A ResNet built from an ArchSpec: stem, residual stages, global average
// pool, fully connected classifier. Parameter names match torchvision's
// (conv1.weight, layer1.0.bn1.running_mean, fc.bias, ...).
#pragma once

#include <cstdint>
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
  // dy: d(loss)/d(logits). Fills every parameter gradient.
  const Tensor& backward(const Tensor& dy) override;
  int64_t macs(const Shape& in) const override;
  std::string kind() const override { return "resnet"; }

  // He (Kaiming) normal init for convolutions (fan_out, as torchvision),
  // BN gamma 1 / beta 0 (gamma 0 on each block's last BN when
  // zero_init_residual), PyTorch's default uniform init for fc.
  void initialize(uint64_t seed, bool zero_init_residual);

  ParamStore& params() { return params_; }
  const ArchSpec& arch() const { return arch_; }
  int64_t num_classes() const { return classes_; }
  std::vector<SummaryRow> summary(int64_t image_size) const;

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
};

}  // namespace rn
