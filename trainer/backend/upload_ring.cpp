// The default UploadRing: one tensor that from_host fills. Enough where
// from_host is synchronous (host backends): nothing queued can still read
// the previous batch when the next one is copied in.
#include <string>

#include "trainer/backend/backend.h"
#include "trainer/core/error.h"

namespace rn {

std::pair<Tensor, Tensor> split_rows(const Tensor& batch, int64_t rows) {
  const Shape& s = batch.shape();
  RN_CHECK(s.rank() == 4 && batch.layout() == Layout::kNCHW && batch.dtype() == DType::kF32,
           "split_rows: the batch must be an fp32 NCHW tensor, not " + s.str());
  RN_CHECK(rows >= 0 && rows <= s[0], std::to_string(rows) + " images for a batch of " + std::to_string(s[0]));
  const int64_t per_image = s[1] * s[2] * s[3];
  std::pair<Tensor, Tensor> parts;
  if (rows > 0) parts.first = batch.slice(0, Shape{rows, s[1], s[2], s[3]}, Layout::kNCHW);
  if (rows < s[0])
    parts.second = batch.slice(size_t(rows * per_image), Shape{s[0] - rows, s[1], s[2], s[3]}, Layout::kNCHW);
  return parts;
}

namespace {

class SingleTensorRing final : public UploadRing {
 public:
  SingleTensorRing(Backend& be, const Shape& s) : be_(be), t_(be.allocate(s, Layout::kNCHW)) {}
  const Tensor& upload(const float* host, int64_t images) override {
    auto [head, tail] = split_rows(t_, images);
    if (!head.empty()) be_.from_host(host, head);
    if (!tail.empty()) be_.fill(tail, 0.f);
    return t_;
  }

 private:
  Backend& be_;
  Tensor t_;
};

}  // namespace

std::unique_ptr<UploadRing> Backend::make_upload_ring(const Shape& s) {
  return std::make_unique<SingleTensorRing>(*this, s);
}

}  // namespace rn
