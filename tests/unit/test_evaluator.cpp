// Validation on the CPU: the evaluator's loss, top-1 and top-5 (views
// averaged as probabilities) against the same model run image by image,
// with a short last batch that runs zero-padded at the full batch size
// (UploadRing::upload), which changes no real image's logits in eval mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "tests/unit/fixed_val_stream.h"
#include "tests/unit/layer_test_util.h"
#include "trainer/core/error.h"
#include "trainer/model/arch.h"
#include "trainer/model/resnet.h"
#include "trainer/train/evaluator.h"

namespace rn::test {
namespace {

using testing_util::FixedValStream;

TEST(UploadRing, CopiesTheImagesAndZerosTheRest) {
  auto be = make_cpu_backend(1);
  const Shape s{3, 3, 2, 2};
  const int64_t per = 12;
  std::vector<float> images(size_t(3 * per)), stale(size_t(3 * per), std::nanf(""));
  for (size_t i = 0; i < images.size(); ++i) images[i] = float(i + 1);
  const auto ring = be->make_upload_ring(s);
  for (const int64_t count : {int64_t(0), int64_t(1), int64_t(2), int64_t(3)}) {
    SCOPED_TRACE(std::to_string(count) + " images");
    ring->upload(stale.data(), 3);  // what a previous batch may have left
    const std::vector<float> got = download(*be, ring->upload(images.data(), count));
    for (int64_t i = 0; i < 3 * per; ++i)
      ASSERT_EQ(got[size_t(i)], i < count * per ? images[size_t(i)] : 0.f) << "element " << i;
  }
  EXPECT_THROW(ring->upload(images.data(), 4), InternalError);
  EXPECT_THROW(ring->upload(images.data(), -1), InternalError);
}

TEST(SplitRows, ViewsTheHeadAndTheTail) {
  auto be = make_cpu_backend(1);
  const Tensor t = be->allocate(Shape{4, 3, 2, 2}, Layout::kNCHW);
  const auto [head, tail] = split_rows(t, 1);
  EXPECT_EQ(head.shape(), (Shape{1, 3, 2, 2}));
  EXPECT_EQ(tail.shape(), (Shape{3, 3, 2, 2}));
  EXPECT_EQ(head.data(), t.data());
  EXPECT_EQ(tail.data(), t.data() + 12);
  EXPECT_TRUE(split_rows(t, 0).first.empty());
  EXPECT_TRUE(split_rows(t, 4).second.empty());
  EXPECT_THROW(split_rows(be->allocate(Shape{3, 12}, Layout::kNC), 1), InternalError);
}

struct Case {
  int64_t samples, batch;
  int views;
  friend void PrintTo(const Case& c, std::ostream* os) {
    *os << c.samples << " samples, batch " << c.batch << ", " << c.views << " view(s)";
  }
};

class EvaluatorOnCpu : public ::testing::TestWithParam<Case> {};

// The reference runs each view of each image in a full batch of other
// (non-zero) images at another row than the evaluator used: eval mode makes
// its logits independent of both, so they agree to the last few bits.
TEST_P(EvaluatorOnCpu, MatchesTheModelImageByImage) {
  const Case c = GetParam();
  const int size = 16, classes = 10;
  auto be = make_cpu_backend(2);
  ArchSpec arch;
  ASSERT_TRUE(lookup_arch("cifar-resnet8", &arch));
  ResNet model(*be, arch, classes);
  model.initialize(5, false);
  FixedValStream val(c.samples, c.batch, c.views, size, classes, 77);

  Evaluator ev(*be, classes, int(c.batch), size);
  const EvalResult got = ev.run(model, val, nullptr, nullptr);
  const EvalResult again = ev.run(model, val, nullptr, nullptr);  // the stream restarts
  EXPECT_EQ(again.loss, got.loss);
  EXPECT_EQ(again.top1, got.top1);

  const int64_t per = 3 * size * size;
  Tensor batch = be->allocate(Shape{c.batch, 3, size, size}, Layout::kNCHW);
  std::vector<float> host(size_t(c.batch * per)), logits(size_t(c.batch * classes));
  double loss = 0, top1 = 0, top5 = 0;
  for (int64_t i = 0; i < c.samples; ++i) {
    std::vector<double> p(classes, 0.0);
    const int64_t row = (i + 1) % c.batch;
    for (int v = 0; v < c.views; ++v) {
      for (int64_t r = 0; r < c.batch; ++r) {  // others: sample (i + r + 1) mod samples, view v
        const float* img = val.image(r == row ? i : (i + r + 1) % c.samples, v);
        std::copy_n(img, per, host.begin() + r * per);
      }
      be->from_host(host.data(), batch);
      be->to_host(model.forward(batch, Mode::kEval), logits.data());
      const float* z = logits.data() + row * classes;
      const double zmax = *std::max_element(z, z + classes);
      double sum = 0;
      for (int j = 0; j < classes; ++j) sum += std::exp(double(z[j]) - zmax);
      for (int j = 0; j < classes; ++j) p[size_t(j)] += std::exp(double(z[j]) - zmax) / sum / c.views;
    }
    const int32_t label = val.label(i);
    int above = 0;
    for (int j = 0; j < classes; ++j) above += p[size_t(j)] > p[size_t(label)];
    loss -= std::log(p[size_t(label)]);
    top1 += above == 0;
    top5 += above < 5;
  }
  EXPECT_EQ(got.images, c.samples);
  EXPECT_EQ(got.skipped, 0);
  EXPECT_NEAR(got.loss, loss / double(c.samples), 1e-6 * loss / double(c.samples));
  EXPECT_DOUBLE_EQ(got.top1, top1 / double(c.samples));
  EXPECT_DOUBLE_EQ(got.top5, top5 / double(c.samples));
}

// A short last batch of 3 (and of 1, with two views), and batches that
// divide the samples.
INSTANTIATE_TEST_SUITE_P(Batches, EvaluatorOnCpu, ::testing::Values(Case{11, 4, 1}, Case{9, 4, 2}, Case{8, 4, 1}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::to_string(info.param.samples) + "_by_" + std::to_string(info.param.batch) +
                                  "_views" + std::to_string(info.param.views);
                         });

}  // namespace
}  // namespace rn::test
