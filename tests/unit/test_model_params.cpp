// Parameter counts and shapes against torchvision and the paper.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "trainer/model/resnet.h"

namespace {

int64_t count(const std::string& arch_name, int classes, rn::Backend& be) {
  rn::ArchSpec arch;
  EXPECT_TRUE(rn::lookup_arch(arch_name, &arch)) << arch_name;
  rn::ResNet net(be, arch, classes);
  return net.params().param_count();
}

TEST(ModelParams, ImageNetCountsEqualTorchvision) {
  auto be = rn::make_cpu_backend(2);
  // torchvision.models.resnetXX(num_classes=1000): sum(p.numel() for p in m.parameters())
  EXPECT_EQ(count("resnet18", 1000, *be), 11689512);
  EXPECT_EQ(count("resnet34", 1000, *be), 21797672);
  EXPECT_EQ(count("resnet50", 1000, *be), 25557032);
  EXPECT_EQ(count("resnet101", 1000, *be), 44549160);
  EXPECT_EQ(count("resnet152", 1000, *be), 60192808);
}

TEST(ModelParams, CifarCountsMatchPaperTable6) {
  auto be = rn::make_cpu_backend(2);
  // He et al. 2016, Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M.
  const std::pair<const char*, double> expected[] = {{"cifar-resnet20", 0.27}, {"cifar-resnet32", 0.46},
                                                     {"cifar-resnet44", 0.66}, {"cifar-resnet56", 0.85},
                                                     {"cifar-resnet110", 1.7}, {"cifar-resnet1202", 19.4}};
  for (const auto& [name, millions] : expected) {
    const double m = count(name, 10, *be) / 1e6;
    const double rounding = millions < 1 ? 0.005 : 0.05;  // the paper rounds to 2 or 3 significant digits
    EXPECT_NEAR(m, millions, rounding) << name;
  }
  // Exact, option A (no shortcut parameters): 16*27 + stages + fc.
  EXPECT_EQ(count("cifar-resnet20", 10, *be), 269722);
}

TEST(ModelParams, PlainNetsHaveTheSameCountsWhenNoProjectionExists) {
  auto be = rn::make_cpu_backend(2);
  // Option A adds no parameters, so plain and residual CIFAR nets are equal.
  EXPECT_EQ(count("cifar-plain20", 10, *be), count("cifar-resnet20", 10, *be));
  // resnet18 has 3 projection shortcuts (conv 1x1 + BN) that plain18 lacks.
  const int64_t proj = (64 * 128 + 2 * 128) + (128 * 256 + 2 * 256) + (256 * 512 + 2 * 512);
  EXPECT_EQ(count("plain18", 1000, *be) + proj, count("resnet18", 1000, *be));
}

TEST(ModelParams, TorchvisionNamesAndShapes) {
  auto be = rn::make_cpu_backend(2);
  rn::ArchSpec arch;
  ASSERT_TRUE(rn::lookup_arch("resnet50", &arch));
  rn::ResNet net(*be, arch, 1000);
  std::map<std::string, rn::Shape> shapes;
  for (const auto& p : net.params().params()) shapes[p.name] = p.shape;
  std::set<std::string> buffers;
  for (const auto& b : net.params().buffers()) buffers.insert(b.name);
  EXPECT_EQ(shapes.at("conv1.weight"), (rn::Shape{64, 3, 7, 7}));
  EXPECT_EQ(shapes.at("layer1.0.conv3.weight"), (rn::Shape{256, 64, 1, 1}));
  EXPECT_EQ(shapes.at("layer1.0.downsample.0.weight"), (rn::Shape{256, 64, 1, 1}));
  EXPECT_EQ(shapes.at("layer2.0.conv2.weight"), (rn::Shape{128, 128, 3, 3}));  // stride on the 3x3 (v1.5)
  EXPECT_EQ(shapes.at("layer4.2.bn3.bias"), (rn::Shape{2048}));
  EXPECT_EQ(shapes.at("fc.weight"), (rn::Shape{1000, 2048}));
  EXPECT_EQ(shapes.count("layer1.1.downsample.0.weight"), 0u);
  EXPECT_EQ(net.params().params().size(), 161u);  // len(list(torchvision resnet50().parameters()))
  EXPECT_TRUE(buffers.count("layer3.5.bn2.running_var"));
  EXPECT_TRUE(buffers.count("bn1.num_batches_tracked"));
  EXPECT_EQ(buffers.size(), 53u * 3);  // 53 BN layers x (mean, var, num_batches_tracked)
}

TEST(ModelParams, MultiplyAddsOfResnet50) {
  auto be = rn::make_cpu_backend(2);
  rn::ArchSpec arch;
  ASSERT_TRUE(rn::lookup_arch("resnet50", &arch));
  rn::ResNet net(*be, arch, 1000);
  // 4.09 GMACs at 224x224 (the paper's "3.8 x 10^9 FLOPs" counts the v1 stride placement).
  EXPECT_NEAR(net.macs(rn::Shape{1, 3, 224, 224}) / 1e9, 4.089, 0.001);
}

TEST(ModelParams, UnknownArchitecturesAreRejected) {
  rn::ArchSpec a;
  EXPECT_FALSE(rn::lookup_arch("resnet51", &a));
  EXPECT_FALSE(rn::lookup_arch("cifar-resnet21", &a));  // not 6n+2
  EXPECT_FALSE(rn::lookup_arch("cifar-resnet2", &a));
  EXPECT_TRUE(rn::lookup_arch("cifar-resnet8", &a));
  EXPECT_EQ(a.blocks, (std::vector<int>{1, 1, 1}));
}

}  // namespace
