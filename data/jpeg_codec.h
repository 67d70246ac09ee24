// JPEG encode/decode through libjpeg-turbo's TurboJPEG API. Corrupt or
// truncated data is an rn::UserError (JpegError), never a crash; libjpeg's
// warnings (e.g. "premature end of data") count as errors too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "trainer/core/error.h"

namespace rn {

class JpegError : public UserError {
 public:
  using UserError::UserError;
};

struct DecodedImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3, HWC, RGB
};

// rgb: height * width * 3 bytes, HWC. 4:2:0 subsampling.
std::vector<uint8_t> encode_jpeg(const uint8_t* rgb, int width, int height, int quality = 90);
DecodedImage decode_jpeg(const uint8_t* data, size_t size);

}  // namespace rn
