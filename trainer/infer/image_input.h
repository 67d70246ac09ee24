// JPEG files as network input, preprocessed the way the loader prepares a
// validation image (data/loader.cpp): the centre-crop window is planned on
// the full image, the JPEG decoded at the smallest scale that keeps the
// window at least the output size, then cropped, resized and normalised.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/jpeg_decoder.h"

namespace rn {

// Throws UserError when `path` does not exist or is a directory (what
// load() checks first, without reading the file).
void check_image_file(const std::string& path);

class ImageInput {
 public:
  // o.kind must be a deterministic kind (kCenter).
  explicit ImageInput(const data::AugmentOptions& o);

  int size() const { return aug_.options().out_size; }
  int64_t floats() const { return aug_.output_floats(); }  // 3 x size x size
  // Writes the preprocessed image (CHW) to out. Throws UserError naming
  // `path` when the file is missing or unreadable, or is not a JPEG image.
  void load(const std::string& path, float* out);

 private:
  JpegDecoder dec_;
  data::Augmenter aug_;
  std::vector<uint8_t> bytes_;
};

}  // namespace rn
