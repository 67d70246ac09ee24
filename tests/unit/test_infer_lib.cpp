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
#include "trainer/infer/jpeg_inference.h"
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

// Decoding a batch on several threads gives each image what one ImageInput
// gives it, in its own place, and the first bad file is reported whichever
// thread met it.
TEST(InferLib, BatchDecoderMatchesOneImageInput) {
  const std::string dir = infer_dir("decoder");
  rn::DataConfig d;
  d.image_size = 16;
  const auto aug = rn::augment_options(d, "center");
  std::vector<std::string> paths;
  for (int i = 0; i < 7; ++i) {
    paths.push_back(dir + "/" + std::to_string(i) + ".jpg");
    write_jpeg_file(paths.back(), 20 + 13 * i, 90 - 9 * i, i);  // other sizes, other decode scales
  }
  rn::ImageInput one(aug);
  const size_t per = size_t(one.floats());
  std::vector<float> want(paths.size() * per);
  for (size_t i = 0; i < paths.size(); ++i) one.load(paths[i], want.data() + i * per);
  for (int threads : {1, 3}) {
    rn::ImageBatchDecoder dec(aug, threads);
    std::vector<float> got(want.size(), -7.f);
    dec.decode(paths.data(), int64_t(paths.size()), got.data());
    EXPECT_EQ(got, want) << threads << " threads";
    // Only the first 4: the rest of `got` is left alone.
    std::fill(got.begin(), got.end(), -7.f);
    dec.decode(paths.data(), 4, got.data());
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + 4 * long(per), want.begin())) << threads;
    EXPECT_EQ(std::count(got.begin(), got.end(), -7.f), long(3 * per)) << threads;
  }
  std::ofstream(dir + "/bad.jpg") << "not a jpeg";
  std::vector<std::string> bad = paths;
  bad[5] = dir + "/bad.jpg";
  bad[2] = dir + "/missing.jpg";
  std::vector<float> out(bad.size() * per);
  for (int threads : {1, 3}) {
    rn::ImageBatchDecoder dec(aug, threads);
    try {
      dec.decode(bad.data(), int64_t(bad.size()), out.data());
      ADD_FAILURE() << "no error with " << threads << " threads";
    } catch (const rn::UserError& e) {
      EXPECT_NE(std::string(e.what()).find("missing.jpg"), std::string::npos) << e.what();
    }
  }
}

// run_jpeg_inference: every image's logits, in order, whatever the batch
// (two full batches and a short one, or one batch), as the model gives them
// for the image alone.
TEST(InferLib, JpegInferenceInBatchesMatchesImagesOneByOne) {
  const std::string dir = infer_dir("jpegrun");
  rn::BackendOptions cpu;
  cpu.threads = 1;
  const std::string ck = make_infer_checkpoint(dir, false);
  std::vector<std::string> paths;
  for (int i = 0; i < 5; ++i) {
    paths.push_back(dir + "/" + std::to_string(i) + ".jpg");
    write_jpeg_file(paths.back(), 30 + 7 * i, 40, 10 + i);
  }
  rn::CheckpointModel single(ck, 1, cpu);
  rn::ImageInput input(single.preprocessing());
  const int64_t k = single.num_classes();
  std::vector<float> image(size_t(input.floats())), want(paths.size() * size_t(k));
  for (size_t i = 0; i < paths.size(); ++i) {
    input.load(paths[i], image.data());
    single.logits(image.data(), 1, input.size(), input.size(), want.data() + i * size_t(k));
  }
  for (size_t i = 1; i < paths.size(); ++i)  // else a mix-up could pass
    EXPECT_NE(std::vector<float>(want.begin() + long(i * k), want.begin() + long((i + 1) * k)),
              std::vector<float>(want.begin(), want.begin() + k));
  float scale = 0;
  for (float v : want) scale = std::max(scale, std::abs(v));
  for (int batch : {2, 8}) {
    rn::CheckpointModel model(ck, batch, cpu);
    std::vector<size_t> order;
    std::vector<float> got(want.size());
    rn::run_jpeg_inference(model, paths, 2, [&](size_t i, const float* l) {
      order.push_back(i);
      std::copy_n(l, k, got.begin() + long(i * k));
    });
    EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4})) << batch;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5f * scale) << batch << " " << i;
  }
  // A missing file anywhere stops the run before the first image.
  std::vector<std::string> bad = paths;
  bad.push_back(dir + "/missing.jpg");
  rn::CheckpointModel model(ck, 2, cpu);
  size_t calls = 0;
  EXPECT_THROW(rn::run_jpeg_inference(model, bad, 1, [&](size_t, const float*) { ++calls; }), rn::UserError);
  EXPECT_EQ(calls, 0u);
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
