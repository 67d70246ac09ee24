// One replica's training step as the trainer runs it (upload the batch,
// forward, loss, backward with the gradient all-reduce, the loss-scaler
// check, SGD) and its validation pass, on any backend: what the allocation
// tests watch.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "data/synthetic_source.h"
#include "tests/alloc/alloc_counter.h"
#include "tests/unit/fixed_val_stream.h"
#include "trainer/model/arch.h"
#include "trainer/model/resnet.h"
#include "trainer/nn/softmax_cross_entropy.h"
#include "trainer/optim/loss_scaler.h"
#include "trainer/optim/sgd.h"
#include "trainer/train/data_parallel.h"
#include "trainer/train/evaluator.h"

namespace rn::alloc_test {

struct StepRig {
  // be outlives the rig. fp16 turns on dynamic loss scaling.
  StepRig(Backend& backend, const std::string& arch_name, int64_t batch, int image, bool fp16 = false)
      : be(backend),
        arch(lookup(arch_name)),
        model(be, arch, kClasses),
        opt(be, model.params(), SgdOptions{0.9f, false, 1e-4f, true}),
        loss(be, 0.1f),
        scaler(fp16, 1024.0, 100),
        inputs(be.make_upload_ring(Shape{batch, 3, image, image})),
        evaluator(be, kClasses, int(batch), image),
        full_val(2 * batch, batch, 1, image, kClasses, 5),
        short_val(2 * batch - 1, batch, 1, image, kClasses, 6) {
    model.set_output_pool(&model.grad_pool());  // as resnet-train
    model.initialize(1, false);
    const SyntheticSource src(SyntheticOptions{kClasses, image, 0.5, 3});
    for (int i = 0; i < 2; ++i) {
      batches[i].resize(batch, image);
      src.fill(0, uint64_t(i * batch), batches[i]);
    }
  }

  // One training step on batch k % 2; dp: the data-parallel hooks, or null.
  void step(int k, DataParallel* dp = nullptr) {
    const HostBatch& b = batches[k % 2];
    const Tensor& x = inputs->upload(b.images.data(), b.n);
    const float s = scaler.scale();
    loss.forward_backward(model.forward(x, Mode::kTrain), b.labels.data(), s);
    if (dp) dp->begin_backward();
    model.backward(loss.grad());
    if (dp) dp->finish_backward();
    if (scaler.update(!scaler.enabled() || be.all_finite(model.params().flat_grads()))) opt.step(0.01f, 1.f / s);
    (void)loss.result();  // as the trainer reads it
  }

  // The trainer's validation: a pass of the evaluator over two full
  // batches, or over a full batch and a short one (run zero-padded on the
  // full batch's plans: it must need nothing the full batches did not).
  void evaluate(bool short_last) { (void)evaluator.run(model, short_last ? short_val : full_val, nullptr, nullptr); }

  static constexpr int64_t kClasses = 10;
  static ArchSpec lookup(const std::string& name) {
    ArchSpec a;
    if (!lookup_arch(name, &a)) throw std::invalid_argument("no architecture " + name);
    return a;
  }

  Backend& be;
  ArchSpec arch;
  ResNet model;
  Sgd opt;
  SoftmaxCrossEntropy loss;
  LossScaler scaler;
  std::unique_ptr<UploadRing> inputs;
  HostBatch batches[2];
  Evaluator evaluator;
  testing_util::FixedValStream full_val, short_val;
};

// The steady state of a rig: 2 warm-up steps and a validation pass of full
// batches (the upload ring's slots each used once, the training and
// inference plans built), then 3 steps and a validation pass that ends in a
// short batch, watched. Expects no allocation outside the libraries and no
// new device allocation; `who` names the case in failures. dp: the
// data-parallel hooks (null: none); world: its ranks leave the warm-up
// together.
inline void expect_steady_steps_allocate_nothing(StepRig& rig, const std::string& who, DataParallel* dp = nullptr,
                                                 comm::Communicator* world = nullptr) {
  for (int k = 0; k < 2; ++k) rig.step(k, dp);
  rig.evaluate(/*short_last=*/false);
  rig.be.synchronize();
  if (world) world->barrier("warm-up");
  const size_t device_before = rig.be.device_allocations();
  AllocationWatch watch;
  for (int k = 2; k < 5; ++k) rig.step(k, dp);
  rig.evaluate(/*short_last=*/true);
  rig.be.synchronize();
  watch.stop();
  EXPECT_EQ(rig.be.device_allocations(), device_before) << who << ": device or pinned allocations";
  EXPECT_EQ(watch.count(), 0u) << who << ": 3 training steps and a validation pass allocated:\n" << watch.where();
  if (!world || world->rank() == 0)
    std::printf("  (allocations inside the libraries' own code: %s)\n", watch.libraries().c_str());
}

}  // namespace rn::alloc_test
