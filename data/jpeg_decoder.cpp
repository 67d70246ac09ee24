#include "data/jpeg_decoder.h"

#include <turbojpeg.h>

#include <algorithm>
#include <string>

namespace rn {

namespace {
constexpr int kMaxSide = 1 << 15;  // larger is a corrupt header, not an image
}

JpegDecoder::JpegDecoder() : handle_(tjInitDecompress()) {
  if (!handle_) throw InternalError(std::string("tjInitDecompress failed: ") + tjGetErrorStr2(nullptr));
  int n = 0;
  const tjscalingfactor* f = tjGetScalingFactors(&n);
  for (int i = 0; i < n; ++i)
    if (f[i].num < f[i].denom) scales_.push_back({f[i].num, f[i].denom});
  std::sort(scales_.begin(), scales_.end(),
            [](const JpegScale& a, const JpegScale& b) { return a.num * b.denom < b.num * a.denom; });
}

JpegDecoder::~JpegDecoder() { tjDestroy(static_cast<tjhandle>(handle_)); }

JpegSize JpegDecoder::header(const uint8_t* data, size_t size) {
  if (size == 0) throw JpegError("JPEG data is empty");
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(static_cast<tjhandle>(handle_), data, static_cast<unsigned long>(size), &w, &h, &subsamp,
                          &colorspace) != 0)
    throw JpegError(std::string("not a valid JPEG header: ") + tjGetErrorStr2(static_cast<tjhandle>(handle_)));
  if (w < 1 || h < 1 || w > kMaxSide || h > kMaxSide)
    throw JpegError("JPEG header says " + std::to_string(w) + "x" + std::to_string(h) + ", which is not plausible");
  return {w, h};
}

JpegScale JpegDecoder::scale_for(int w, int h, int min_side) const {
  for (const JpegScale& s : scales_)  // largest reduction first
    if (int64_t(std::min(w, h)) * s.num >= int64_t(min_side) * s.denom) return s;
  return {1, 1};
}

void JpegDecoder::decode(const uint8_t* data, size_t size, JpegScale scale) {
  const JpegSize full = header(data, size);
  decoded_ = {scale.apply(full.width), scale.apply(full.height)};
  const size_t bytes = size_t(decoded_.width) * decoded_.height * 3;
  if (rgb_.size() < bytes) rgb_.resize(bytes);
  // Stop on warnings: truncated data is a warning to libjpeg but an error here.
  if (tjDecompress2(static_cast<tjhandle>(handle_), data, static_cast<unsigned long>(size), rgb_.data(),
                    decoded_.width, 0, decoded_.height, TJPF_RGB, TJFLAG_STOPONWARNING) != 0)
    throw JpegError(std::string("corrupt or truncated JPEG: ") + tjGetErrorStr2(static_cast<tjhandle>(handle_)));
}

}  // namespace rn
