#include "data/jpeg_codec.h"

#include <turbojpeg.h>

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

}  // namespace rn
