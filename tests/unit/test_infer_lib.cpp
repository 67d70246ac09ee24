// resnet-infer's library: a JPEG file is preprocessed exactly as the
// validation loader prepares the same JPEG from a dataset (same floats), the
// model picks up the stored configuration, and top_k ranks softmax
// probabilities.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "data/loader.h"
#include "infer_test_util.h"
#include "trainer/infer/checkpoint_model.h"
#include "trainer/infer/image_input.h"
#include "trainer/infer/predictions.h"
#include "trainer/train/data_streams.h"

namespace {

using namespace rn::testing_util;

TEST(InferLib, JpegFileMatchesTheValidationLoader) {
  const std::string dir = infer_dir("loader");
  rn::DataConfig d;
  d.image_size = 24;
  d.val_resize = 30;
  d.mean = {0.4, 0.5, 0.6};
  d.std = {0.2, 0.25, 0.3};
  // 200x150: decoded at a reduced scale; 37x61: portrait, at full scale.
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{200, 150}, {37, 61}}) {
    const std::string data = dir + "/data_" + std::to_string(w);
    const Written written = write_dataset(data, Layout::kJpeg, 3, 2, 3, w, h);
    rn::data::LoaderOptions o;
    o.dir = data;
    o.plan.batch_size = 3;
    o.plan.train = false;
    o.augment = rn::augment_options(d, "center");
    o.threads = 1;
    rn::data::Loader loader(o);
    loader.start({0, 0});
    const rn::data::Batch& batch = loader.next();
    ASSERT_EQ(batch.n, 3);

    rn::ImageInput input(rn::augment_options(d, "center"));
    std::vector<float> mine(size_t(input.floats()));
    for (int i = 0; i < 3; ++i) {
      const std::string file = dir + "/img.jpg";
      const auto& bytes = written.data[size_t(batch.indices[i])];
      std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
      input.load(file, mine.data());
      const float* theirs = batch.images + i * input.floats();
      for (int64_t k = 0; k < input.floats(); ++k) ASSERT_EQ(mine[size_t(k)], theirs[k]) << w << "x" << h << " " << k;
    }
    loader.stop();
  }
}

TEST(InferLib, ModelTakesItsPreprocessingFromTheStoredConfig) {
  const std::string dir = infer_dir("config");
  rn::BackendOptions cpu;
  cpu.threads = 1;
  rn::CheckpointModel m(make_infer_checkpoint(dir, false), 4, cpu);
  EXPECT_EQ(m.num_classes(), kInferClasses);
  EXPECT_EQ(m.info().state.step, 42);
  EXPECT_EQ(m.min_input_side(), 8);
  const rn::data::AugmentOptions a = m.preprocessing();
  EXPECT_EQ(a.kind, rn::data::AugmentKind::kCenter);
  EXPECT_EQ(a.out_size, kInferImageSize);
  EXPECT_EQ(a.resize_size, 18);  // 16 / 0.875, rounded
}

TEST(InferLib, TopKIsSoftmaxRanked) {
  const float logits[] = {1.f, 3.f, 2.f, 3.f, -1.f};
  const auto top = rn::top_k(logits, 5, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].index, 1);  // a tie goes to the lower index
  EXPECT_EQ(top[1].index, 3);
  EXPECT_EQ(top[2].index, 2);
  double sum = 0;
  for (float z : logits) sum += std::exp(double(z));
  EXPECT_NEAR(top[0].prob, std::exp(3.0) / sum, 1e-12);
  EXPECT_EQ(rn::top_k(logits, 5, 9).size(), 5u);
  EXPECT_EQ(rn::class_label({}, 7), "class 7");
  EXPECT_EQ(rn::class_label({"a", "b"}, 1), "b");
}

}  // namespace
