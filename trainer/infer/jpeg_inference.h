// JPEG files through a CheckpointModel a batch at a time, so that any
// number of files needs two batches of memory: the next batch is decoded
// (on the OpenMP threads, one decoder each) while the device runs the
// current one.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trainer/infer/checkpoint_model.h"
#include "trainer/infer/image_input.h"

namespace rn {

// Decodes and preprocesses JPEG files (ImageInput's centre crop) on up to
// `threads` OpenMP threads.
class ImageBatchDecoder {
 public:
  ImageBatchDecoder(const data::AugmentOptions& o, int threads);

  int size() const { return inputs_.front()->size(); }
  int64_t floats() const { return inputs_.front()->floats(); }  // per image
  // Writes n images (n x floats(), CHW each) to out. Throws the UserError of
  // the first bad file in paths[0..n) (ImageInput::load), whichever thread
  // found it, so that the message does not depend on the thread count.
  void decode(const std::string* paths, int64_t n, float* out);

 private:
  std::vector<std::unique_ptr<ImageInput>> inputs_;  // one per thread (a decoder is not movable)
};

// Classifies `paths` in order: on_logits(i, logits) receives file i's
// num_classes() logits, batch by batch. Every path is checked to exist
// before the first decode, so a mistyped name costs no compute; a file that
// turns out unreadable or not a JPEG throws UserError naming it (calls for
// earlier files may have been made). threads: decoding threads.
void run_jpeg_inference(CheckpointModel& model, const std::vector<std::string>& paths, int threads,
                        const std::function<void(size_t, const float*)>& on_logits);

}  // namespace rn
