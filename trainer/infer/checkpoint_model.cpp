#include "trainer/infer/checkpoint_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "trainer/core/error.h"
#include "trainer/train/data_streams.h"
#include "trainer/train/model_setup.h"

namespace rn {
namespace {

// The run's configuration as stored in the checkpoint, made to agree with
// the weights: arch and classes come from the file's own attributes, and a
// key the text leaves out (an imported file's short config) takes the
// arch's default rather than resnet-train's.
Config stored_config(const CheckpointInfo& ck) {
  const char* argv[] = {"resnet-infer"};
  const CliRequest req = parse_command_line(1, argv, ck.state.config_ini, "the configuration stored in " + ck.path);
  Config cfg = req.config;
  ArchSpec arch;
  if (!lookup_arch(ck.arch, &arch))
    throw UserError(
        fmt::format("checkpoint {} holds a model of architecture '{}', which this resnet-infer ({}) "
                    "does not know",
                    ck.path, ck.arch, RN_VERSION));
  if (req.given_keys.count("model.arch") && cfg.model.arch != ck.arch)
    throw UserError(
        fmt::format("checkpoint {} is inconsistent: its weights are {} but its stored configuration "
                    "says model.arch = {}",
                    ck.path, ck.arch, cfg.model.arch));
  if (!req.given_keys.count("data.image_size")) cfg.data.image_size = arch.default_image_size;
  cfg.model.arch = ck.arch;
  cfg.model.num_classes = int(ck.num_classes);
  return cfg;
}

}  // namespace

CheckpointModel::CheckpointModel(const std::string& path, int64_t batch, const BackendOptions& device)
    : ck_(read_checkpoint_info(path)), cfg_(stored_config(ck_)), batch_(std::max<int64_t>(1, batch)) {
  const ModelChoice m = resolve_model(cfg_.model);
  be_ = make_backend(device);
  activations_ = std::make_unique<TensorPool>(*be_);
  model_ = std::make_unique<ResNet>(*be_, m.arch, ck_.num_classes, m.shortcut);
  model_->set_output_pool(activations_.get());
  load_model_weights(ck_, *model_, *be_, WeightMatch::kExact);
}

data::AugmentOptions CheckpointModel::preprocessing() const { return augment_options(cfg_.data, "center"); }

void CheckpointModel::prepare(int64_t n, int h, int w) {
  RN_CHECK(submitted_ == nullptr, "CheckpointModel: a submitted batch was not collected");
  if (inputs_ && input_shape_[2] == h && input_shape_[3] == w) return;
  input_shape_ = Shape{std::min(batch_, n), 3, h, w};
  inputs_ = be_->make_upload_ring(input_shape_);
  for (auto& b : host_images_) b.assign(size_t(input_shape_.numel()), 0.f);
  batch_logits_.resize(size_t(input_shape_[0] * ck_.num_classes));
}

void CheckpointModel::run(int64_t n, int h, int w, const std::function<void(int64_t, int64_t, float*)>& read,
                          const std::function<void(int64_t, int64_t, const float*)>& done) {
  if (n <= 0) return;
  prepare(n, h, w);
  const int64_t b = input_shape_[0];
  auto chunk = [&](int64_t first) { return std::min(b, n - first); };
  try {
    read(0, chunk(0), host_images_[0].data());
    submit(host_images_[0].data(), chunk(0));
    for (int64_t first = 0, i = 0; first < n; first += b, i ^= 1) {
      // The next chunk is read while the device runs this one.
      const int64_t next = first + b;
      if (next < n) read(next, chunk(next), host_images_[i ^ 1].data());
      collect(batch_logits_.data());
      if (next < n) submit(host_images_[i ^ 1].data(), chunk(next));
      done(first, chunk(first), batch_logits_.data());
    }
  } catch (...) {
    if (submitted_) collect(batch_logits_.data());  // leave nothing queued on the device
    throw;
  }
}

void CheckpointModel::logits(const float* images, int64_t n, int h, int w, float* out) {
  const int64_t per_image = 3 * int64_t(h) * w, k = ck_.num_classes;
  run(
      n, h, w,
      [&](int64_t first, int64_t count, float* host) {
        std::copy_n(images + first * per_image, count * per_image, host);
      },
      [&](int64_t first, int64_t count, const float* l) { std::copy_n(l, count * k, out + first * k); });
}

void CheckpointModel::submit(const float* images, int64_t count) {
  RN_CHECK(count >= 1 && count <= input_shape_[0],
           fmt::format("CheckpointModel::submit of {} images: the forward batch is {}", count, input_shape_[0]));
  submitted_ = &model_->forward(inputs_->upload(images, count), Mode::kEval);
}

void CheckpointModel::collect(float* out) {
  RN_CHECK(submitted_ != nullptr, "CheckpointModel::collect without a submitted batch");
  const Tensor* logits = submitted_;
  submitted_ = nullptr;  // a failing copy is not retried
  be_->to_host(*logits, out);
}

}  // namespace rn
