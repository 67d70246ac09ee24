// Running a short batch (the last one of an evaluation or inference pass)
// at the full batch size. A new batch size would make every layer build,
// and keep, a second plan (its output buffers: on a GPU
// gigabytes for an ImageNet ResNet, and another convolution algorithm
// search). Padding with zero images keeps the full batch's plans; eval mode
// treats every image on its own (batch norm with its running statistics),
// so the padding changes no real image's logits, which are the first rows.
#pragma once

#include <cstdint>

#include "trainer/backend/backend.h"

namespace rn {

// Copies `count` images (plain NCHW floats, read as Backend::from_host reads
// them) into the first rows of `batch` (an fp32 kNCHW tensor, count <= its
// first dimension) and zeros the rows after them. Allocates nothing.
void upload_padded(Backend& be, const float* images, int64_t count, Tensor& batch);

}  // namespace rn
