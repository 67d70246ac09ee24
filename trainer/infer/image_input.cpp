#include "trainer/infer/image_input.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/jpeg_codec.h"
#include "trainer/core/error.h"

namespace rn {
namespace {

std::vector<uint8_t> read_file(const std::string& path) {
  check_image_file(path);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad() || !in.is_open()) throw UserError("image " + path + " cannot be read; check its permissions");
  return bytes;
}

}  // namespace

void check_image_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw UserError("image " + path + " does not exist; check the path");
  if (std::filesystem::is_directory(path, ec))
    throw UserError("image " + path + " is a directory; give JPEG files (e.g. " + path + "/*.JPEG)");
}

ImageInput::ImageInput(const data::AugmentOptions& o) : aug_(o) {}

void ImageInput::load(const std::string& path, float* out) {
  bytes_ = read_file(path);
  const uint8_t* data = bytes_.data();
  const size_t n = bytes_.size();
  data::SampleRng rng(0);  // the centre crop draws nothing
  try {
    const JpegHeader h = read_jpeg_header(data, n);
    if (h.colorspace == JpegColorspace::kCmyk || h.colorspace == JpegColorspace::kYcck) {
      // Rare; resnet-data converts these to RGB once, here it is done in full.
      const DecodedImage img = decode_jpeg_any_colorspace(data, n);
      aug_.render(img.rgb.data(), img.width, img.height, aug_.plan(img.width, img.height, 0, rng), rng, out);
      return;
    }
    const data::CropWindow win = aug_.plan(h.width, h.height, 0, rng);
    const JpegScale scale = dec_.scale_for(win.w, win.h, size());
    dec_.decode(data, n, scale);
    const JpegSize got = dec_.size();
    const data::CropWindow w =
        scale.num == scale.denom ? win : data::scale_window(win, scale.num, scale.denom, got.width, got.height);
    aug_.render(dec_.rgb(), got.width, got.height, w, rng, out);
  } catch (const JpegError& e) {
    throw UserError("image " + path + " is not a readable JPEG (" + e.what() + "); only JPEG images can be classified");
  }
}

}  // namespace rn
