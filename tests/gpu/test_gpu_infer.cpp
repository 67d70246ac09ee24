// resnet-infer's model on the GPU (CheckpointModel with --device cuda): the
// logits of a checkpoint agree with the CPU's for the same images, in the
// fp32 reference mode to the suite's 1e-4 and in bf16 to the whole-network
// bound of test_gpu_resnet.cpp (5e-2 of the largest logit: ~1e-2 relative
// RMS from rounding activations and weights along the network, with a
// factor ~5 of margin). Five images through batches of 4 also cover the
// zero-padded short last batch, and --gpu naming a device that is not there.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/gpu/gpu_test_util.h"
#include "tests/unit/infer_test_util.h"
#include "trainer/core/error.h"
#include "trainer/infer/checkpoint_model.h"

namespace rn::gpu_test {
namespace {

using testing_util::kInferClasses;
using testing_util::kInferImageSize;

HostVec logits_on(const std::string& ck, const BackendOptions& o, const HostVec& images, int64_t n) {
  CheckpointModel model(ck, 4, o);
  HostVec out(size_t(n * kInferClasses), 42.f);
  model.logits(images.data(), n, kInferImageSize, kInferImageSize, out.data());
  return out;
}

TEST_F(GpuTest, InferenceLogitsMatchTheCpu) {
  const std::string ck = testing_util::make_infer_checkpoint(testing_util::infer_dir("gpu"), false);
  constexpr int64_t n = 5;
  const HostVec images = testing_util::test_floats(n * 3 * kInferImageSize * kInferImageSize, 3);
  BackendOptions cpu_opt;
  cpu_opt.threads = 2;
  const HostVec want = logits_on(ck, cpu_opt, images, n);
  const Shape s{n, kInferClasses};
  for (const DType t : {DType::kF32, DType::kBF16}) {
    BackendOptions o;
    o.device = "cuda";
    o.precision = t;
    EXPECT_TRUE(near(std::string("logits ") + dtype_name(t), logits_on(ck, o, images, n), want,
                     t == DType::kF32 ? kF32Tol : 5e-2, s));
  }
  BackendOptions absent;
  absent.device = "cuda";
  absent.cuda_device = 64;
  EXPECT_THROW(logits_on(ck, absent, images, n), UserError);
}

}  // namespace
}  // namespace rn::gpu_test
