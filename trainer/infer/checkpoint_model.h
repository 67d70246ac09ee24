// A checkpoint's model ready for inference: the network it names (arch,
// classes and shortcut from the checkpoint and its stored configuration)
// with its weights loaded, run in eval mode (BN with running statistics,
// so every image's logits are independent of the rest of its batch), with
// its activations in a pool (ResNet::set_output_pool): a few at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/augment.h"
#include "trainer/backend/backend.h"
#include "trainer/checkpoint/checkpoint_reader.h"
#include "trainer/config/config.h"
#include "trainer/model/resnet.h"

namespace rn {

class CheckpointModel {
 public:
  // Reads `path` (UserError for a missing, damaged, incomplete or foreign
  // file) and loads its weights onto the backend `device` describes (CPU
  // threads, or a GPU, its ordinal and precision; UserError when it cannot
  // be had). batch: images per forward pass (>= 1).
  CheckpointModel(const std::string& path, int64_t batch, const BackendOptions& device);

  const CheckpointInfo& info() const { return ck_; }
  const Config& config() const { return cfg_; }
  int64_t num_classes() const { return ck_.num_classes; }
  int64_t batch() const { return batch_; }
  const Backend& backend() const { return *be_; }
  // The smallest input side the network takes (as data.image_size allows).
  int min_input_side() const { return model_->arch().imagenet_stem ? 32 : 8; }
  // The validation centre crop of the stored configuration: shorter side to
  // data.val_resize, centre data.image_size crop, data.mean/std.
  data::AugmentOptions preprocessing() const;

  // Runs n images of h x w through the network a forward batch at a time,
  // with two host buffers of a forward batch used in turn: read(first,
  // count, host) writes images [first, first + count) (3 x h x w normalised
  // floats each) into `host` while the device runs the batch before (on a
  // GPU; the CPU computes in between); done(first, count, logits)
  // receives their count x classes logits, in order. The forward batch is
  // min(batch(), n) for the first call with an h x w (a later, larger n
  // keeps it); a short chunk is padded with zeros and the padding's outputs
  // dropped (see UploadRing), so one set of kernels serves every call.
  // Exceptions from read or done propagate (nothing is left queued).
  void run(int64_t n, int h, int w, const std::function<void(int64_t first, int64_t count, float* host)>& read,
           const std::function<void(int64_t first, int64_t count, const float* logits)>& done);

  // run() on images already in memory: n x 3 x h x w plain floats,
  // normalised; writes n x classes logits to out.
  void logits(const float* images, int64_t n, int h, int w, float* out);

 private:
  CheckpointInfo ck_;
  Config cfg_;
  int64_t batch_;
  std::unique_ptr<Backend> be_;
  std::unique_ptr<TensorPool> activations_;  // the network's outputs (inference only)
  std::unique_ptr<ResNet> model_;
  // The forward batch for h x w images: fixed at min(batch(), n) by the
  // first call with that size.
  void prepare(int64_t n, int h, int w);
  // Uploads `count` images and queues their forward pass (on a GPU it
  // returns before the device is done); collect() waits and writes their
  // forward batch x classes logits (the padding's too). One batch in
  // flight at a time.
  void submit(const float* images, int64_t count);
  void collect(float* out);

  std::unique_ptr<UploadRing> inputs_;  // [batch, 3, h, w] of the last call's size
  Shape input_shape_;
  std::vector<float> host_images_[2];  // run()'s read buffers, [batch, 3, h, w] each
  std::vector<float> batch_logits_;    // [batch, classes]
  const Tensor* submitted_ = nullptr;  // the logits submit() queued, until collect()
};

}  // namespace rn
