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

// --- Header inspection and CMYK decoding (for the ImageNet converter) ---

enum class JpegColorspace { kRgb, kYCbCr, kGray, kCmyk, kYcck };

struct JpegHeader {
  int width = 0;
  int height = 0;
  JpegColorspace colorspace = JpegColorspace::kYCbCr;
};

// Reads only the header: JpegError when the data is not a JPEG (e.g. a PNG
// named .JPEG) or claims an implausible size.
JpegHeader read_jpeg_header(const uint8_t* data, size_t size);

// decode_jpeg, plus CMYK and YCCK JPEGs, which TurboJPEG 2.1 cannot decode to
// RGB: they are decoded as CMYK and converted with R = (255-C)(255-K)/255
// for ink amounts C, K (likewise G, B): no colour management, as Pillow. Files with an
// Adobe APP14 marker (Photoshop's, e.g. ImageNet's CMYK files) store 255 - ink
// and are inverted first.
DecodedImage decode_jpeg_any_colorspace(const uint8_t* data, size_t size);

}  // namespace rn
