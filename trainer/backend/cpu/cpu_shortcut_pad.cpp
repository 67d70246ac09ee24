// Option-A shortcut on plain or channel-blocked layouts. nchw is the
// blocked layout with block 1, so one offset formula serves all of them.
#include "trainer/backend/cpu/cpu_backend.h"
#include "trainer/core/parallel_for.h"

namespace rn {
namespace {

struct Indexer {
  int64_t c, h, w, blk;
  explicit Indexer(const Tensor& t) : c(t.shape()[1]), h(t.shape()[2]), w(t.shape()[3]), blk(layout_channel_block(t.layout())) {}
  int64_t operator()(int64_t n, int64_t ci, int64_t y, int64_t x) const {
    return (((n * (c / blk) + ci / blk) * h + y) * w + x) * blk + ci % blk;
  }
};

// Calls f(small_offset, big_offset) for every element of the strided
// identity, and zeroes everything of `big` first when `zero_big`.
template <class F>
void for_each_pair(const Tensor& small, const Tensor& big, int64_t stride, F f) {
  const Indexer si(small), bi(big);
  const int64_t planes = small.shape()[0] * si.c;  // (image, channel) pairs
  parallel_for(planes, [&](int64_t bc) {
    const int64_t b = bc / si.c, c = bc % si.c;
    for (int64_t y = 0; y < bi.h; ++y)
      for (int64_t x = 0; x < bi.w; ++x) f(si(b, c, y * stride, x * stride), bi(b, c, y, x));
  });
}

void check_shapes(const Tensor& x, const Tensor& y, int64_t stride) {
  const auto& xs = x.shape();
  const auto& ys = y.shape();
  RN_CHECK(xs.rank() == 4 && ys.rank() == 4 && xs[0] == ys[0] && ys[1] >= xs[1] &&
               ys[2] == (xs[2] + stride - 1) / stride && ys[3] == (xs[3] + stride - 1) / stride,
           "shortcut pad " + xs.str() + " -> " + ys.str());
}

}  // namespace

void CpuBackend::shortcut_pad_forward(const Tensor& x, Tensor& y, int64_t stride) {
  check_shapes(x, y, stride);
  fill(y, 0.f);
  const float* xp = x.data();
  float* yp = y.data();
  for_each_pair(x, y, stride, [&](int64_t xi, int64_t yi) { yp[yi] = xp[xi]; });
}

void CpuBackend::shortcut_pad_backward(const Tensor& dy, Tensor& dx, int64_t stride) {
  check_shapes(dx, dy, stride);
  fill(dx, 0.f);
  const float* dyp = dy.data();
  float* dxp = dx.data();
  for_each_pair(dx, dy, stride, [&](int64_t xi, int64_t yi) { dxp[xi] = dyp[yi]; });
}

}  // namespace rn
