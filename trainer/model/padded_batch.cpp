#include "trainer/model/padded_batch.h"

#include <string>

#include "trainer/core/error.h"

namespace rn {

void upload_padded(Backend& be, const float* images, int64_t count, Tensor& batch) {
  const Shape& s = batch.shape();
  RN_CHECK(s.rank() == 4 && batch.layout() == Layout::kNCHW && batch.dtype() == DType::kF32,
           "upload_padded: the batch must be an fp32 NCHW tensor, not " + s.str());
  RN_CHECK(count >= 0 && count <= s[0],
           "upload_padded: " + std::to_string(count) + " images for a batch of " + std::to_string(s[0]));
  if (count == s[0]) {
    be.from_host(images, batch);
    return;
  }
  const int64_t per_image = s[1] * s[2] * s[3];
  if (count > 0) {
    Tensor head = batch.slice(0, Shape{count, s[1], s[2], s[3]}, Layout::kNCHW);
    be.from_host(images, head);
  }
  Tensor tail = batch.slice(size_t(count * per_image), Shape{s[0] - count, s[1], s[2], s[3]}, Layout::kNCHW);
  be.fill(tail, 0.f);
}

}  // namespace rn
