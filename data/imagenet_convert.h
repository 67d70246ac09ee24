// resnet-data convert imagenet: an ImageNet-style folder (data/imagenet_folder.h)
// -> a jpeg-layout sharded dataset (data/FORMAT.md).
//
// Worker threads read, check and (when needed) re-encode images in any order;
// the calling thread writes them through one ShardWriter in the listing's
// order, so the output is the same for any thread count. Each image is
// decoded once to prove the loader can read it, and stored byte-identical
// unless it must be re-encoded (at `quality`):
//  - its shorter side exceeds `max_side`: resized with OpenCV's INTER_AREA so
//    the shorter side is exactly max_side, keeping the aspect ratio;
//  - it is CMYK/YCCK (ImageNet has a few): the loader decodes only RGB and
//    grayscale JPEGs, so it is converted to RGB (decode_jpeg_any_colorspace).
// Files that do not decode (ImageNet's train set holds one PNG named .JPEG)
// are skipped and reported; more than `max_bad` of them stop the conversion
// with a DataError and no dataset (ShardWriter removes its shards).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/imagenet_folder.h"
#include "trainer/core/error.h"

namespace rn::data {

// A problem in the images themselves rather than in the command: resnet-data exits 1.
class DataError : public UserError {
 public:
  using UserError::UserError;
};

struct ImagenetConvertOptions {
  std::string src;
  std::string out;
  std::string labels;   // flat folder: its labels file; empty: class folders
  std::string classes;  // a converted dataset whose class list to use; empty: from src / the labels
  std::string origin;   // recorded in the manifest
  int64_t shard_size = 1024;
  int threads = 1;
  int max_side = 0;  // 0: keep every size
  int quality = 90;
  int64_t max_bad = 100;
};

// Checks the options, reads --classes' manifest and lists the images: every
// usage or layout problem is an rn::UserError here, before anything is written.
ImageList list_imagenet_images(const ImagenetConvertOptions& o);

struct SkippedImage {
  std::string path;
  std::string reason;
};

struct ImagenetConvertReport {
  int64_t written = 0;
  int64_t resized = 0;
  int64_t from_cmyk = 0;
  size_t shards = 0;
  std::vector<SkippedImage> skipped;  // in input order
};

// Writes the dataset; `progress(done)` is called from the calling thread after each image.
ImagenetConvertReport convert_imagenet(const ImageList& list, const ImagenetConvertOptions& o,
                                       const std::function<void(int64_t done)>& progress);

// One file's bytes as stored: unchanged (after a full decode) or re-encoded
// as above. Throws JpegError when they do not decode.
struct PreparedImage {
  std::vector<uint8_t> jpeg;
  bool resized = false;
  bool from_cmyk = false;
};
PreparedImage prepare_image(std::vector<uint8_t> file, int max_side, int quality);

}  // namespace rn::data
