// Batch inference between HDF5 files: the dataset `images` of the input
// (N, 3, H, W floats, already normalised) becomes the dataset `logits`
// (N, classes, float32) of the output, whose root attributes name the
// checkpoint (`checkpoint`, `arch`, `step`, `num_classes`). Images are read
// and logits written a batch at a time, so N is not bounded by memory.
//
// The output is written under a hidden temporary name in its directory and
// renamed when complete: an interrupted run leaves no partial output.
#pragma once

#include <cstdint>
#include <string>

#include "trainer/infer/checkpoint_model.h"

namespace rn {

struct BatchInferenceResult {
  int64_t images = 0;
  int64_t height = 0, width = 0;
  double seconds = 0;  // reading, forward passes and writing
};

// Throws UserError naming the file: input missing or not HDF5, no `images`
// dataset, not (N, 3, H, W) floats, H or W smaller than the model takes,
// output not writable.
BatchInferenceResult run_batch_inference(CheckpointModel& model, const std::string& input, const std::string& output);

}  // namespace rn
