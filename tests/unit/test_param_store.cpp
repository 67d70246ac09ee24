// ParamStore: aligned slots, torchvision counts, and gaps that stay zero
// through training (the all-reduce, SGD and the weight hash cover them).
#include <gtest/gtest.h>

#include <vector>

#include "trainer/model/resnet.h"
#include "trainer/nn/softmax_cross_entropy.h"
#include "trainer/optim/sgd.h"

namespace {

constexpr int64_t kAlign = rn::ParamStore::kAlignElements;

TEST(ParamStore, EveryTensorStartsAtAnAlignedOffset) {
  auto be = rn::make_cpu_backend(1);
  rn::ParamStore ps;
  // Odd sizes, as a 1-element BN counter or a 10-class bias would leave them.
  const rn::Param* a = ps.declare_param("a", rn::Shape{3}, true);
  const rn::Param* b = ps.declare_param("b", rn::Shape{2, 5}, false);
  const rn::Param* c = ps.declare_param("c", rn::Shape{kAlign}, false);
  const rn::Param* d = ps.declare_param("d", rn::Shape{1}, true);
  const rn::StateBuffer* m = ps.declare_buffer("m", rn::Shape{7});
  const rn::StateBuffer* n = ps.declare_buffer("n", rn::Shape{1});
  const rn::StateBuffer* v = ps.declare_buffer("v", rn::Shape{7});
  ps.allocate(*be);
  EXPECT_EQ(a->offset, 0u);
  EXPECT_EQ(b->offset, size_t(kAlign));
  EXPECT_EQ(c->offset, size_t(2 * kAlign));
  EXPECT_EQ(d->offset, size_t(3 * kAlign));
  EXPECT_EQ(ps.param_count(), 3 + 10 + kAlign + 1);
  EXPECT_EQ(ps.flat_size(), 4 * kAlign);
  EXPECT_EQ(ps.flat_values().numel(), ps.flat_size());
  EXPECT_EQ(ps.flat_grads().numel(), ps.flat_size());
  EXPECT_EQ(m->offset, 0u);
  EXPECT_EQ(n->offset, size_t(kAlign));
  EXPECT_EQ(v->offset, size_t(2 * kAlign));
  EXPECT_EQ(ps.flat_buffer_size(), 3 * kAlign);
  // The views point into the flat buffers at those offsets (the buffers
  // themselves are aligned by the backend: 256 bytes on CUDA).
  EXPECT_EQ(d->value.data(), ps.flat_values().data() + d->offset);
  EXPECT_EQ(d->grad.data(), ps.flat_grads().data() + d->offset);
  EXPECT_EQ(v->value.data(), ps.flat_buffers().data() + v->offset);
}

// Marks which flat elements belong to a tensor; the rest are gaps.
template <class Items>
std::vector<bool> covered(const Items& items, int64_t flat) {
  std::vector<bool> in(size_t(flat), false);
  for (const auto& it : items)
    for (int64_t i = 0; i < it.shape.numel(); ++i) in[it.offset + size_t(i)] = true;
  return in;
}

TEST(ParamStore, GapsStayZeroThroughTraining) {
  auto be = rn::make_cpu_backend(1);
  rn::ArchSpec arch;
  ASSERT_TRUE(rn::lookup_arch("cifar-resnet20", &arch));
  rn::ResNet net(*be, arch, 10);  // fc bias of 10 and BN counters of 1 leave gaps
  rn::ParamStore& ps = net.params();
  ASSERT_GT(ps.flat_size(), ps.param_count());
  rn::SoftmaxCrossEntropy loss(*be, 0.f);
  rn::Sgd opt(*be, ps, rn::SgdOptions{0.9f, false, 0.1f, false});  // large decay: any nonzero gap would move
  const int n = 4;
  std::vector<float> x(size_t(n) * 3 * 32 * 32);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 17) / 17.f - 0.5f;
  const int32_t labels[n] = {1, 3, 5, 7};
  rn::Tensor in = be->allocate(rn::Shape{n, 3, 32, 32}, rn::Layout::kNCHW);
  be->from_host(x.data(), in);
  for (int step = 0; step < 2; ++step) {
    loss.forward_backward(net.forward(in, rn::Mode::kTrain), labels, 1.f);
    net.backward(loss.grad());
    opt.step(0.1f);
  }
  const auto check = [&](rn::Tensor& flat, const std::vector<bool>& in_tensor, const char* what) {
    std::vector<float> h(size_t(flat.numel()));
    be->to_host(flat, h.data());
    int64_t gaps = 0, nonzero = 0, moved = 0;
    for (size_t i = 0; i < h.size(); ++i) {
      if (in_tensor[i]) {
        moved += h[i] != 0.f;
      } else {
        ++gaps;
        nonzero += h[i] != 0.f;
      }
    }
    EXPECT_GT(gaps, 0) << what;
    EXPECT_EQ(nonzero, 0) << what << ": alignment gaps were written";
    EXPECT_GT(moved, 0) << what << ": the tensors themselves must hold data";
  };
  const auto params = covered(ps.params(), ps.flat_size());
  check(ps.flat_values(), params, "values");
  check(ps.flat_grads(), params, "gradients");
  check(opt.velocity(), params, "momentum");
  check(ps.flat_buffers(), covered(ps.buffers(), ps.flat_buffer_size()), "BN buffers");
}

}  // namespace
