// The ResNet family of He et al. (CVPR 2016) as data: which block, how many
// per stage, widths, and which shortcut. The builder (resnet.h) turns an
// ArchSpec into modules.
#pragma once

#include <string>
#include <vector>

namespace rn {

enum class BlockType { kBasic, kBottleneck };
// kProjection: option B (1x1 conv + BN only where the shape changes);
// kPadIdentity: option A (strided identity + zero channels);
// kNone: plain network (no shortcut at all), for the degradation experiment.
enum class ShortcutType { kProjection, kPadIdentity, kNone };

struct ArchSpec {
  std::string name;
  bool imagenet_stem = true;       // 7x7/2 conv + 3x3/2 max-pool; else 3x3/1 conv (CIFAR)
  BlockType block = BlockType::kBasic;
  std::vector<int> blocks;          // blocks per stage
  std::vector<int> widths;          // planes per stage (bottleneck output is 4x)
  ShortcutType shortcut = ShortcutType::kProjection;
  int default_classes = 1000;
  int default_image_size = 224;
};

// Known names: resnet18/34/50/101/152, plain18/34, cifar-resnetN (N = 6n+2,
// paper: 20/32/44/56/110/1202), cifar-plainN (N = 6n+2).
std::vector<std::string> known_arch_names();
// Empty optional-like: returns false when `name` is not a known architecture.
bool lookup_arch(const std::string& name, ArchSpec* out);
// Parses "A"/"B"/"none"; returns false otherwise.
bool parse_shortcut(const std::string& s, ShortcutType* out);

}  // namespace rn
