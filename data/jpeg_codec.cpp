#include "data/jpeg_codec.h"

#include <turbojpeg.h>

#include <cstring>
#include <string>

namespace rn {

namespace {

// Images beyond this side length are treated as corrupt headers rather than
// allocated (ImageNet's largest is a few thousand pixels).
constexpr int kMaxSide = 1 << 15;

struct TjHandle {
  tjhandle h;
  explicit TjHandle(tjhandle x) : h(x) {}
  ~TjHandle() {
    if (h) tjDestroy(h);
  }
  TjHandle(const TjHandle&) = delete;
  TjHandle& operator=(const TjHandle&) = delete;
};

std::string tj_message(tjhandle h) { return h ? tjGetErrorStr2(h) : tjGetErrorStr2(nullptr); }

}  // namespace

std::vector<uint8_t> encode_jpeg(const uint8_t* rgb, int width, int height, int quality) {
  if (width < 1 || height < 1 || width > kMaxSide || height > kMaxSide)
    throw JpegError("cannot encode a " + std::to_string(width) + "x" + std::to_string(height) + " image");
  TjHandle tj(tjInitCompress());
  if (!tj.h) throw InternalError("tjInitCompress failed: " + tj_message(nullptr));
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(tj.h, rgb, width, 0, height, TJPF_RGB, &buf, &size, TJSAMP_420, quality, TJFLAG_ACCURATEDCT) != 0) {
    const std::string msg = tj_message(tj.h);
    tjFree(buf);
    throw JpegError("JPEG encoding failed: " + msg);
  }
  std::vector<uint8_t> out(buf, buf + size);
  tjFree(buf);
  return out;
}

DecodedImage decode_jpeg(const uint8_t* data, size_t size) {
  if (size == 0) throw JpegError("JPEG data is empty");
  TjHandle tj(tjInitDecompress());
  if (!tj.h) throw InternalError("tjInitDecompress failed: " + tj_message(nullptr));
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj.h, data, static_cast<unsigned long>(size), &w, &h, &subsamp, &colorspace) != 0)
    throw JpegError("not a valid JPEG header: " + tj_message(tj.h));
  if (w < 1 || h < 1 || w > kMaxSide || h > kMaxSide)
    throw JpegError("JPEG header says " + std::to_string(w) + "x" + std::to_string(h) + ", which is not plausible");
  DecodedImage img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  // Stop on warnings: truncated data is a warning to libjpeg but an error here.
  if (tjDecompress2(tj.h, data, static_cast<unsigned long>(size), img.rgb.data(), w, 0, h, TJPF_RGB,
                    TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING) != 0)
    throw JpegError("corrupt or truncated JPEG: " + tj_message(tj.h));
  return img;
}

// --- Header inspection and CMYK decoding (for the ImageNet converter) ---

namespace {

JpegHeader checked_header(tjhandle tj, const uint8_t* data, size_t size) {
  if (size == 0) throw JpegError("JPEG data is empty");
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, data, static_cast<unsigned long>(size), &w, &h, &subsamp, &colorspace) != 0)
    throw JpegError("not a valid JPEG header: " + tj_message(tj));
  if (w < 1 || h < 1 || w > kMaxSide || h > kMaxSide)
    throw JpegError("JPEG header says " + std::to_string(w) + "x" + std::to_string(h) + ", which is not plausible");
  switch (colorspace) {
    case TJCS_RGB: return {w, h, JpegColorspace::kRgb};
    case TJCS_YCbCr: return {w, h, JpegColorspace::kYCbCr};
    case TJCS_GRAY: return {w, h, JpegColorspace::kGray};
    case TJCS_CMYK: return {w, h, JpegColorspace::kCmyk};
    case TJCS_YCCK: return {w, h, JpegColorspace::kYcck};
    default: throw JpegError("JPEG has an unknown colorspace (" + std::to_string(colorspace) + ")");
  }
}

// Whether an APP14 "Adobe" segment precedes the first scan.
bool has_adobe_marker(const uint8_t* d, size_t n) {
  size_t i = 2;  // after SOI
  while (i + 4 <= n && d[i] == 0xFF) {
    const uint8_t marker = d[i + 1];
    if (marker == 0xFF) {  // fill byte before a marker
      ++i;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) break;  // start of scan / end of image
    const size_t len = (size_t{d[i + 2]} << 8) | d[i + 3];
    if (marker == 0xEE && len >= 7 && i + 9 <= n && std::memcmp(d + i + 4, "Adobe", 5) == 0) return true;
    i += 2 + len;
  }
  return false;
}

}  // namespace

JpegHeader read_jpeg_header(const uint8_t* data, size_t size) {
  TjHandle tj(tjInitDecompress());
  if (!tj.h) throw InternalError("tjInitDecompress failed: " + tj_message(nullptr));
  return checked_header(tj.h, data, size);
}

DecodedImage decode_jpeg_any_colorspace(const uint8_t* data, size_t size) {
  TjHandle tj(tjInitDecompress());
  if (!tj.h) throw InternalError("tjInitDecompress failed: " + tj_message(nullptr));
  const JpegHeader hdr = checked_header(tj.h, data, size);
  if (hdr.colorspace != JpegColorspace::kCmyk && hdr.colorspace != JpegColorspace::kYcck)
    return decode_jpeg(data, size);
  const size_t pixels = static_cast<size_t>(hdr.width) * hdr.height;
  std::vector<uint8_t> cmyk(pixels * 4);
  if (tjDecompress2(tj.h, data, static_cast<unsigned long>(size), cmyk.data(), hdr.width, 0, hdr.height, TJPF_CMYK,
                    TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING) != 0)
    throw JpegError("corrupt or truncated CMYK JPEG: " + tj_message(tj.h));
  const bool inverted = has_adobe_marker(data, size);
  DecodedImage img;
  img.width = hdr.width;
  img.height = hdr.height;
  img.rgb.resize(pixels * 3);
  for (size_t p = 0; p < pixels; ++p) {
    const uint8_t* s = &cmyk[p * 4];
    const unsigned white_k = inverted ? s[3] : 255u - s[3];  // 255 - ink
    for (int c = 0; c < 3; ++c) {
      const unsigned white_c = inverted ? s[c] : 255u - s[c];
      img.rgb[p * 3 + c] = static_cast<uint8_t>((white_c * white_k + 127) / 255);
    }
  }
  return img;
}

}  // namespace rn
