// GradAccumulator (trainer/train/grad_accumulator.h): a step's gradients
// summed over its micro-batches, handed to the model's own grad-ready
// callback (the data-parallel all-reduce) range by range during the last
// micro-batch's backward, already summed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/layer_test_util.h"
#include "trainer/core/error.h"
#include "trainer/model/resnet.h"
#include "trainer/train/grad_accumulator.h"

namespace rn::test {
namespace {

TEST(GradAccumulator, TheLastBackwardHandsOnEachRangeAlreadySummed) {
  auto be = make_cpu_backend(2);
  ArchSpec arch;
  ASSERT_TRUE(lookup_arch("cifar-resnet8", &arch));
  ResNet net(*be, arch, 10);
  net.initialize(3, false);
  const int64_t n = 4, s = 16;
  auto rng = ref::make_rng(11);
  std::vector<Tensor> x, dy;
  for (int i = 0; i < 3; ++i) {
    x.push_back(upload(*be, ref::random_uniform(size_t(n * 3 * s * s), rng), Shape{n, 3, s, s}, Layout::kNCHW));
    dy.push_back(upload(*be, ref::random_uniform(size_t(n * 10), rng), Shape{n, 10}, Layout::kNC));
  }
  auto pass = [&](int i) {
    net.forward(x[size_t(i)], Mode::kTrain);
    net.backward(dy[size_t(i)]);
  };
  // Each micro-batch's gradients alone (training-mode BN: they depend on the
  // batch, the weights and dy only).
  std::vector<std::vector<float>> alone;
  for (int i = 0; i < 3; ++i) {
    pass(i);
    alone.push_back(download(*be, net.params().flat_grads()));
  }

  for (int k : {2, 3}) {
    SCOPED_TRACE("micro-batches: " + std::to_string(k));
    // The sum in the accumulator's order: copy, add, ..., then the last
    // micro-batch's gradient plus the sum (fp32 additions: bit-exact).
    std::vector<float> want = alone[0];
    for (int i = 1; i < k - 1; ++i)
      for (size_t j = 0; j < want.size(); ++j) want[j] = want[j] + alone[size_t(i)][j];
    for (size_t j = 0; j < want.size(); ++j) want[j] = alone[size_t(k - 1)][j] + want[j];

    // The callback DataParallel would have installed: at each call every
    // gradient from `offset` on must already be the step's sum.
    std::vector<size_t> offsets;
    size_t wrong = 0;
    net.set_grad_ready_callback([&](size_t offset) {
      offsets.push_back(offset);
      const std::vector<float> g = download(*be, net.params().flat_grads());
      for (size_t j = offset; j < g.size(); ++j) wrong += g[j] != want[j];
    });
    {
      GradAccumulator acc(net, k);
      for (int step = 0; step < 2; ++step) {  // the second step must not see the first's sum
        offsets.clear();
        for (int i = 0; i < k; ++i) {
          acc.begin_micro_batch(i);
          pass(i);
          acc.end_micro_batch();
          if (i < k - 1) {
            EXPECT_TRUE(offsets.empty()) << "handed on during micro-batch " << i;
          }
        }
        ASSERT_GE(offsets.size(), 3u);
        EXPECT_EQ(offsets.back(), 0u);
        for (size_t j = 1; j < offsets.size(); ++j) EXPECT_LE(offsets[j], offsets[j - 1]);
        EXPECT_EQ(wrong, 0u) << "step " << step << ": gradients handed on before they were summed";
        EXPECT_EQ(download(*be, net.params().flat_grads()), want) << "step " << step;
      }
      EXPECT_THROW(acc.begin_micro_batch(1), InternalError) << "micro-batches out of order";
      acc.begin_micro_batch(0);
      EXPECT_THROW(acc.end_micro_batch(), InternalError) << "no backward ran";
    }
    // Destroyed: the model's own callback is back, called on every backward.
    offsets.clear();
    pass(0);
    EXPECT_FALSE(offsets.empty());
    net.set_grad_ready_callback(nullptr);
  }
}

}  // namespace
}  // namespace rn::test
