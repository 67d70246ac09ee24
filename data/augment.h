// Image augmentation: every kind is one crop window of the source image,
// resized to a square network input, optionally mirrored, then (pixel/255 -
// mean) / std per channel, written as planar float CHW.
//
// One general mechanism: the paper's scale augmentation, Inception's
// random-resized crop, the evaluation centre crop, 10-crop and CIFAR's
// pad-and-crop differ only in how plan() chooses the window. The loader
// decodes the JPEG (at a reduced scale when the window is much larger than
// the output: see scale_window) and calls render().
//
// Units: windows and sizes are in source pixels; mean/std in pixel/255.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/sample_rng.h"

namespace rn::data {

enum class AugmentKind {
  // He et al. 2016 Sec. 3.4 (after Simonyan & Zisserman): resize so the
  // shorter side is uniform in [scale_min, scale_max], take a random
  // out_size x out_size crop, random horizontal flip.
  kScale,
  // Szegedy et al. 2015 / torchvision RandomResizedCrop: a window of area
  // uniform in [area_min, area_max] x image area and aspect ratio (w/h)
  // log-uniform in [ratio_min, ratio_max] (10 tries, then the central crop
  // clamped to the ratio range), resized to out_size, random flip.
  kInception,
  // Evaluation: resize so the shorter side is resize_size, centre crop
  // out_size. With resize_size = out_size on an out_size image (CIFAR) it
  // is the identity.
  kCenter,
  // Evaluation, 10 views (He et al. 2016 Sec. 3.4, "standard 10-crop"):
  // kCenter's resize, then the four corner crops and the centre crop, then
  // the same five mirrored. View order as torchvision's TenCrop: top-left,
  // top-right, bottom-left, bottom-right, centre, then the flipped five.
  kTenCrop,
  // He et al. 2016 Sec. 4.2: pad `pad` black pixels on each side, random
  // out_size crop (no resize), random flip.
  kCifar,
};

// "scale" | "inception" | "center" | "tencrop" | "cifar"; throws
// rn::UserError naming `where` and the allowed names for anything else.
AugmentKind parse_augment_kind(const std::string& name, const std::string& where);
std::string augment_kind_name(AugmentKind k);

struct AugmentOptions {
  AugmentKind kind = AugmentKind::kCenter;
  int out_size = 224;                       // side of the square output, pixels
  int scale_min = 256, scale_max = 480;     // kScale: shorter side range, pixels
  double area_min = 0.08, area_max = 1.0;   // kInception: fraction of the image area
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // kInception: width / height
  int resize_size = 256;                    // kCenter, kTenCrop: shorter side before the crop
  int pad = 4;                              // kCifar: black border, pixels
  bool flip = true;                         // random mirror (kScale, kInception, kCifar)
  // AlexNet PCA colour lighting (Krizhevsky et al. 2012), std-dev of the
  // per-eigenvector factor; 0 = off; fb.resnet.torch uses 0.1.
  double lighting_std = 0;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};   // RGB, pixel/255
  std::array<float, 3> stddev{0.229f, 0.224f, 0.225f};  // RGB, pixel/255, > 0
};

// A window of the source image, in source pixels, and whether the output is
// mirrored. It lies inside the image except for kCifar, whose window may
// reach `pad` pixels past each border (those pixels are black).
struct CropWindow {
  int x = 0, y = 0, w = 0, h = 0;
  bool flip = false;
  friend bool operator==(const CropWindow&, const CropWindow&) = default;
};

// The window in an image decoded at scale num/denom (TurboJPEG's scaled
// decoding): coordinates multiplied and rounded so that the window stays
// inside the scaled image (of size ceil(width*num/denom) x ceil(...)).
CropWindow scale_window(const CropWindow& w, int num, int denom, int scaled_width, int scaled_height);

class Augmenter {
 public:
  // Checks the options (sizes >= 1, ranges ordered, std > 0, ...); throws
  // rn::UserError naming the field.
  explicit Augmenter(const AugmentOptions& o);

  const AugmentOptions& options() const { return o_; }
  // Output images per source image: 10 for kTenCrop, else 1.
  int views() const;
  // Floats written per view: 3 * out_size * out_size.
  int64_t output_floats() const { return 3 * int64_t(o_.out_size) * o_.out_size; }

  // The window of view `view` (0 <= view < views()) for a width x height
  // image. Random kinds draw from rng (crop first, then flip); the
  // deterministic kinds draw nothing.
  CropWindow plan(int width, int height, int view, SampleRng& rng) const;

  // Renders `window` of the HWC RGB image (width x height, rows of width*3
  // bytes) into out[3][out_size][out_size]: crop, resize (area averaging
  // when shrinking by 2 or more, else bilinear: after the loader's scaled
  // JPEG decoding the factor is almost always below 2, where bilinear loses
  // little and costs a third of area averaging), mirror, lighting (drawing 3
  // normals from rng when lighting_std > 0), normalise. Uses this object's
  // scratch buffers: one Augmenter per thread. Allocates only when an image
  // is larger than any seen before.
  void render(const uint8_t* rgb, int width, int height, const CropWindow& window, SampleRng& rng, float* out);

 private:
  AugmentOptions o_;
  std::vector<uint8_t> padded_, resized_;  // scratch, reused
};

}  // namespace rn::data
