#include "trainer/model/arch.h"

#include <cstdlib>

namespace rn {

std::vector<std::string> known_arch_names() {
  return {"resnet18",      "resnet34",      "resnet50",      "resnet101",     "resnet152",
          "plain18",       "plain34",       "cifar-resnet20", "cifar-resnet32", "cifar-resnet44",
          "cifar-resnet56", "cifar-resnet110", "cifar-resnet1202", "cifar-plain20", "cifar-plain32",
          "cifar-plain44", "cifar-plain56"};
}

static bool parse_cifar_depth(const std::string& s, int* n) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  int depth = std::atoi(s.c_str());
  if (depth < 8 || (depth - 2) % 6 != 0) return false;
  *n = (depth - 2) / 6;
  return true;
}

bool lookup_arch(const std::string& name, ArchSpec* out) {
  ArchSpec a;
  a.name = name;
  if (name.rfind("cifar-", 0) == 0) {
    const bool plain = name.rfind("cifar-plain", 0) == 0;
    const std::string prefix = plain ? "cifar-plain" : "cifar-resnet";
    if (name.rfind(prefix, 0) != 0) return false;
    int n = 0;
    if (!parse_cifar_depth(name.substr(prefix.size()), &n)) return false;
    a.imagenet_stem = false;
    a.block = BlockType::kBasic;
    a.blocks = {n, n, n};
    a.widths = {16, 32, 64};
    a.shortcut = plain ? ShortcutType::kNone : ShortcutType::kPadIdentity;
    a.default_classes = 10;
    a.default_image_size = 32;
    *out = a;
    return true;
  }
  a.widths = {64, 128, 256, 512};
  if (name == "resnet18" || name == "plain18") a.blocks = {2, 2, 2, 2};
  else if (name == "resnet34" || name == "plain34") a.blocks = {3, 4, 6, 3};
  else if (name == "resnet50") a.blocks = {3, 4, 6, 3}, a.block = BlockType::kBottleneck;
  else if (name == "resnet101") a.blocks = {3, 4, 23, 3}, a.block = BlockType::kBottleneck;
  else if (name == "resnet152") a.blocks = {3, 8, 36, 3}, a.block = BlockType::kBottleneck;
  else return false;
  if (name.rfind("plain", 0) == 0) a.shortcut = ShortcutType::kNone;
  *out = a;
  return true;
}

bool parse_shortcut(const std::string& s, ShortcutType* out) {
  if (s == "A") *out = ShortcutType::kPadIdentity;
  else if (s == "B") *out = ShortcutType::kProjection;
  else if (s == "none") *out = ShortcutType::kNone;
  else return false;
  return true;
}

}  // namespace rn
