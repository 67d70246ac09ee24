// TensorPool: the shared storage of activation gradients during backward
// and of activations during an inference-only forward
// (trainer/nn/tensor_pool.h), alone and inside a whole ResNet.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/unit/layer_test_util.h"
#include "trainer/core/error.h"
#include "trainer/model/resnet.h"

namespace rn::test {
namespace {

TEST(TensorPool, ReusesReleasedStorageOfTheSameByteCount) {
  auto be = make_cpu_backend(1);
  TensorPool pool(*be);
  const Tensor a = pool.acquire(Shape{2, 8, 4, 4}, Layout::kNCHW, DType::kF32);
  const Tensor b = pool.acquire(Shape{2, 8, 4, 4}, Layout::kNCHW, DType::kF32);
  EXPECT_NE(a.raw(), b.raw()) << "two held tensors share storage";
  EXPECT_EQ(pool.slots(), 2u);
  EXPECT_EQ(pool.held(), 2u);

  pool.release(a);
  EXPECT_EQ(pool.held(), 1u);
  // Another shape and layout of the same bytes takes a's storage.
  const Tensor c = pool.acquire(Shape{2, 16, 2, 4}, Layout::kNCHW8c, DType::kF32);
  EXPECT_EQ(c.raw(), a.raw());
  EXPECT_EQ(c.shape(), (Shape{2, 16, 2, 4}));
  EXPECT_EQ(c.layout(), Layout::kNCHW8c);
  EXPECT_EQ(pool.slots(), 2u);

  // Another byte count gets storage of its own, even with a slot free.
  pool.release(b);
  const Tensor d = pool.acquire(Shape{2, 8, 4, 2}, Layout::kNCHW, DType::kF32);
  EXPECT_NE(d.raw(), b.raw());
  EXPECT_EQ(pool.slots(), 3u);
  EXPECT_EQ(pool.bytes(), 2 * a.bytes() + d.bytes());
}

TEST(TensorPool, SharesStorageAcrossDtypesOfTheSameByteCount) {
  auto be = make_cpu_backend(1);
  TensorPool pool(*be);
  const Tensor f = pool.acquire(Shape{4, 6}, Layout::kNC, DType::kF32);
  pool.release(f);
  // What a GPU's mixed precision does: bf16 activations' gradients on the
  // storage an fp32 classifier gradient used.
  const Tensor h = pool.acquire(Shape{2, 6, 2, 2}, Layout::kNHWC, DType::kBF16);
  EXPECT_EQ(h.raw(), f.raw());
  EXPECT_EQ(h.dtype(), DType::kBF16);
  EXPECT_EQ(h.bytes(), f.bytes());
  EXPECT_EQ(pool.slots(), 1u);
}

TEST(TensorPool, RejectsTensorsItDoesNotHold) {
  auto be = make_cpu_backend(1);
  TensorPool pool(*be);
  const Tensor a = pool.acquire(Shape{8}, Layout::kNC, DType::kF32);
  EXPECT_THROW(pool.release(be->allocate(Shape{8}, Layout::kNC)), InternalError);
  EXPECT_THROW(pool.release(Tensor()), InternalError);
  pool.release(a);
  EXPECT_THROW(pool.release(a), InternalError) << "a second release of the same tensor";
}

// A whole ResNet's backward hands every gradient back, needs storage for
// only a few at a time, and allocates none after its first pass.
TEST(TensorPool, ResNetBackwardNeedsAFewGradientsNotOnePerLayer) {
  auto be = make_cpu_backend(2);
  ArchSpec arch;
  ASSERT_TRUE(lookup_arch("resnet18", &arch));
  ResNet net(*be, arch, 10);
  net.initialize(7, false);
  const int64_t n = 2, size = 64;
  auto rng = ref::make_rng(3);
  const Tensor x =
      upload(*be, ref::random_uniform(size_t(n * 3 * size * size), rng), Shape{n, 3, size, size}, Layout::kNCHW);
  const Tensor dy = upload(*be, ref::random_uniform(size_t(n * 10), rng), Shape{n, 10}, Layout::kNC);

  std::vector<float> grads[2];
  size_t slots = 0;
  for (int pass = 0; pass < 2; ++pass) {
    net.forward(x, Mode::kTrain);
    EXPECT_TRUE(net.backward(dy).empty());
    EXPECT_EQ(net.grad_pool().held(), 0u);
    grads[pass] = download(*be, net.params().flat_grads());
    if (pass == 0) slots = net.grad_pool().slots();
  }
  EXPECT_EQ(net.grad_pool().slots(), slots) << "the second backward needed new storage";
  // Same inputs, same weights: the second pass on reused storage computes
  // the same gradients bit for bit.
  EXPECT_EQ(grads[0], grads[1]);
  // And so does a pass whose pool turns every handed-back gradient into
  // NaN: nothing is read after its release.
  TensorPool poisoned(*be, /*poison=*/true);
  net.set_grad_pool(&poisoned);
  net.forward(x, Mode::kTrain);
  net.backward(dy);
  EXPECT_EQ(download(*be, net.params().flat_grads()), grads[0]);
  net.set_grad_pool(nullptr);

  // resnet18 computes 58 input gradients (19 convs, 20 BNs, the two
  // pools, fc, and each of the 8 blocks' shortcut gradient dz and residual
  // sum); their sizes fall into a few byte counts, each needing at most
  // four at once (dy, the layer's dx, a block's dz and its sum). The largest is the max
  // pool's input gradient, [n, 64, size/2, size/2]; the other classes
  // shrink by 2 to 4 per stage.
  const size_t largest = size_t(n * 64 * (size / 2) * (size / 2)) * sizeof(float);
  EXPECT_LE(net.grad_pool().slots(), 24u);
  EXPECT_LE(net.grad_pool().bytes(), 5 * largest) << net.grad_pool().slots() << " slots";
}

// An inference-only ResNet (its modules' outputs from a pool that turns
// every handed-back tensor into NaN) gives the logits of the same network
// without a pool, bit for bit, on every block type and shortcut: nothing is
// read after its release. It holds only the logits after a forward, needs
// no new storage after the first, and a few activations' worth in all.
TEST(TensorPool, InferenceOnlyResNetHoldsAFewActivationsNotEveryLayers) {
  struct Case {
    const char* arch;
    int64_t size;
    bool plain;  // no shortcuts (the blocks' plain tail)
  };
  auto be = make_cpu_backend(2);
  for (const Case& c : {Case{"resnet18", 64, false}, Case{"resnet50", 64, false}, Case{"cifar-resnet20", 32, false},
                        Case{"cifar-resnet20", 32, true}}) {
    SCOPED_TRACE(std::string(c.arch) + (c.plain ? " plain" : ""));
    ArchSpec arch;
    ASSERT_TRUE(lookup_arch(c.arch, &arch));
    const ShortcutType shortcut = c.plain ? ShortcutType::kNone : arch.shortcut;
    ResNet full(*be, arch, 10, shortcut), lean(*be, arch, 10, shortcut);
    full.initialize(5, false);
    lean.initialize(5, false);
    TensorPool pool(*be, /*poison=*/true);
    lean.set_output_pool(&pool);
    const int64_t n = 2;
    auto rng = ref::make_rng(9);
    size_t slots = 0;
    for (int pass = 0; pass < 2; ++pass) {
      const Tensor x = upload(*be, ref::random_uniform(size_t(n * 3 * c.size * c.size), rng),
                              Shape{n, 3, c.size, c.size}, Layout::kNCHW);
      const std::vector<float> want = download(*be, full.forward(x, Mode::kEval));
      EXPECT_EQ(download(*be, lean.forward(x, Mode::kEval)), want) << "pass " << pass;
      EXPECT_EQ(pool.held(), 1u) << "only the logits";
      if (pass == 0) slots = pool.slots();
    }
    EXPECT_EQ(pool.slots(), slots) << "the second forward needed new storage";
    // The stem's output is the largest activation. A block holds its input,
    // its shortcut and two inner outputs at most, storage is kept per byte
    // count, and each stage's activations are half the bytes of the stage
    // before: at most 4 x (1 + 1/2 + 1/4 + ...) < 8 of the largest (the
    // network without a pool keeps 3 to 6 per block).
    const int64_t stem = arch.imagenet_stem ? c.size / 2 : c.size;
    const size_t largest = size_t(n * arch.widths[0] * (arch.block == BlockType::kBasic ? 1 : 4) * stem * stem) * 4;
    EXPECT_LE(pool.bytes(), 8 * largest) << pool.slots() << " slots";
    const Tensor dy = be->allocate(Shape{n, 10}, Layout::kNC);
    EXPECT_THROW(lean.backward(dy), InternalError);
  }
}

// Training with activations and their gradients in one pool (what
// resnet-train does): on a pool that turns every handed-back tensor into
// NaN, two steps give the gradients of the network that keeps its own
// outputs, bit for bit, on every block type and shortcut, so nothing is read
// after its release; every tensor is handed back after each backward, the
// second step needs no new storage, and (resnet18) sharing needs less
// storage than activations and gradients in pools of their own. An eval forward in
// between (validation) fits in the same storage.
TEST(TensorPool, TrainingActivationsAndGradientsShareOnePool) {
  struct Case {
    const char* arch;
    int64_t size;
    bool plain;
  };
  auto be = make_cpu_backend(2);
  for (const Case& c : {Case{"resnet18", 32, false}, Case{"resnet50", 32, false}, Case{"cifar-resnet20", 32, false},
                        Case{"cifar-resnet20", 32, true}}) {
    SCOPED_TRACE(std::string(c.arch) + (c.plain ? " plain" : ""));
    ArchSpec arch;
    ASSERT_TRUE(lookup_arch(c.arch, &arch));
    const ShortcutType shortcut = c.plain ? ShortcutType::kNone : arch.shortcut;
    ResNet own(*be, arch, 10, shortcut), shared(*be, arch, 10, shortcut), apart(*be, arch, 10, shortcut);
    const bool with_apart = std::string(c.arch) == "resnet18";
    TensorPool poisoned(*be, /*poison=*/true), outputs(*be), grads(*be);
    shared.set_grad_pool(&poisoned);
    shared.set_output_pool(&poisoned);
    apart.set_grad_pool(&grads);
    apart.set_output_pool(&outputs);
    const int64_t n = 2;
    auto rng = ref::make_rng(4);
    const Tensor x = upload(*be, ref::random_uniform(size_t(n * 3 * c.size * c.size), rng), Shape{n, 3, c.size, c.size},
                            Layout::kNCHW);
    const Tensor dy = upload(*be, ref::random_uniform(size_t(n * 10), rng), Shape{n, 10}, Layout::kNC);
    size_t slots = 0;
    std::vector<ResNet*> nets = {&own, &shared};
    if (with_apart) nets.push_back(&apart);
    for (ResNet* net : nets) net->initialize(5, false);
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<float> want_logits, want;
      for (ResNet* net : nets) {
        const std::vector<float> logits = download(*be, net->forward(x, Mode::kTrain));
        net->backward(dy);
        const std::vector<float> g = download(*be, net->params().flat_grads());
        if (net == &own) {
          want_logits = logits;
          want = g;
          continue;
        }
        const char* which = net == &shared ? "shared" : "apart";
        EXPECT_EQ(logits, want_logits) << which << " pool, pass " << pass;
        EXPECT_EQ(g, want) << which << " pool, pass " << pass;
      }
      EXPECT_EQ(poisoned.held(), 0u);
      EXPECT_EQ(outputs.held(), 0u);
      // Validation between steps: an eval forward holds only its logits.
      shared.forward(x, Mode::kEval);
      EXPECT_EQ(poisoned.held(), 1u);
      if (pass == 0) slots = poisoned.slots();
    }
    EXPECT_EQ(poisoned.slots(), slots) << "the second step needed new storage";
    if (with_apart) {
      EXPECT_LT(poisoned.bytes(), outputs.bytes() + grads.bytes());
    }
    // A training forward must be followed by its backward; an eval forward
    // leaves nothing for backward.
    EXPECT_THROW(shared.backward(dy), InternalError);
    shared.forward(x, Mode::kTrain);
    EXPECT_THROW(shared.forward(x, Mode::kTrain), InternalError);
  }
}

}  // namespace
}  // namespace rn::test
