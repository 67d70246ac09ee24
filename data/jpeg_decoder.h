// A reusable TurboJPEG decoder for the loader's worker threads: one per
// thread (a TurboJPEG handle is not thread-safe), reusing its output buffer,
// with libjpeg-turbo's scaled decoding (1/8 .. 1 in eighths) so that an
// image much larger than the network input is decoded at a fraction of the
// cost instead of decoded in full and then shrunk.
//
// Corrupt or truncated data is a JpegError (data/jpeg_codec.h), never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/jpeg_codec.h"

namespace rn {

struct JpegSize {
  int width = 0, height = 0;
};

// A scaling factor num/denom that TurboJPEG supports.
struct JpegScale {
  int num = 1, denom = 1;
  int apply(int x) const { return (x * num + denom - 1) / denom; }  // TurboJPEG's TJSCALED
};

class JpegDecoder {
 public:
  JpegDecoder();
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  // Image size from the header only (microseconds).
  JpegSize header(const uint8_t* data, size_t size);
  // The smallest supported scale at which a w x h region of the full image
  // is still at least min_side pixels on both sides (1/1 when none is).
  JpegScale scale_for(int w, int h, int min_side) const;
  // Decodes at `scale` into rgb() (HWC RGB, size() pixels); the buffer is
  // reused and grows only for an image larger than any before.
  void decode(const uint8_t* data, size_t size, JpegScale scale);

  const uint8_t* rgb() const { return rgb_.data(); }
  JpegSize size() const { return decoded_; }

 private:
  void* handle_;  // tjhandle
  std::vector<JpegScale> scales_;  // supported factors < 1, largest reduction first
  std::vector<uint8_t> rgb_;
  JpegSize decoded_;
};

}  // namespace rn
