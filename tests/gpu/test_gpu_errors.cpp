// What `--device cuda` says when it cannot work: no visible GPU, or a cuDNN
// older than the backend needs. These tests run on every machine (they make
// the failure happen), unlike the rest of the GPU suite; the last two need
// a GPU and check the device facts and an out-of-range ordinal.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "tests/gpu/gpu_test_util.h"
#include "trainer/core/error.h"

namespace rn::gpu_test {
namespace {

// Sets (value) or removes (nullptr) an environment variable for a scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_.c_str(), old_->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

BackendOptions cuda_options(int ordinal = 0) {
  BackendOptions o;
  o.device = "cuda";
  o.cuda_device = ordinal;
  return o;
}

// The UserError's message, or "" when make_backend succeeded. Any other
// exception escapes and fails the test with its own message.
std::string user_error_of(const BackendOptions& o) {
  try {
    make_backend(o);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(CudaBackendErrors, BuiltWithTheCudaBackend) { EXPECT_TRUE(cuda_backend_compiled()); }

// The cuDNN check comes before anything touches the device, so pretending an
// old cuDNN (RN_TEST_CUDNN_VERSION, see cuda_device.h) fails the same way
// with or without a GPU.
TEST(CudaBackendErrors, OldCudnnSaysWhichVersionIsNeeded) {
  const ScopedEnv fake("RN_TEST_CUDNN_VERSION", "8900");
  const std::string msg = user_error_of(cuda_options());
  ASSERT_FALSE(msg.empty()) << "make_backend(cuda) accepted cuDNN 8.9.0";
  EXPECT_NE(msg.find("cuDNN >= 9.0.0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("8.9.0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--device cpu"), std::string::npos) << msg;
}

// Runs in a fresh process (below): hides every GPU, then asks for one.
[[noreturn]] void ask_for_a_hidden_gpu() {
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  unsetenv("RN_TEST_CUDNN_VERSION");
  const std::string msg = user_error_of(cuda_options());
  std::fprintf(stderr, "UserError: %s\n", msg.c_str());
  std::exit(msg.empty() ? 1 : 0);
}

// No visible device. CUDA reads CUDA_VISIBLE_DEVICES when the process first
// initialises it, so the check runs in a child that gtest starts afresh
// (death test style "threadsafe": a re-executed binary, no CUDA state yet)
// with every GPU hidden: the message is tested on GPU machines too.
TEST(CudaBackendErrors, NoDeviceSaysSoAndSuggestsCpu) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ask_for_a_hidden_gpu(), ::testing::ExitedWithCode(0), "UserError: .*no CUDA device.*--device cpu");
}

// The same in this process, where no GPU is visible anyway (the case a
// user without a GPU meets).
TEST(CudaBackendErrors, NoDeviceInThisProcess) {
  std::string why;
  if (gpu_present(&why))
    GTEST_SKIP() << "a GPU is visible here; NoDeviceSaysSoAndSuggestsCpu "
                    "covers this case";
  const ScopedEnv real_cudnn("RN_TEST_CUDNN_VERSION", nullptr);
  const std::string msg = user_error_of(cuda_options());
  EXPECT_NE(msg.find("no CUDA device"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--device cpu"), std::string::npos) << msg;
}

TEST(CudaBackendErrors, OrdinalBeyondTheVisibleDevices) {
  RN_SKIP_WITHOUT_GPU();
  const int visible = visible_cuda_devices();
  const std::string msg = user_error_of(cuda_options(visible));
  EXPECT_NE(msg.find("GPU " + std::to_string(visible) + " asked for"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sees " + std::to_string(visible)), std::string::npos) << msg;
}

class GpuBackendFacts : public GpuTestWithParam<DType> {};

TEST_P(GpuBackendFacts, DeviceStreamDescriptionAndMemory) {
  Backend& be = gpu(GetParam());
  EXPECT_EQ(be.device(), 0);
  EXPECT_NE(be.stream(), nullptr);
  const std::string d = be.describe();
  EXPECT_NE(d.find("cuDNN"), std::string::npos) << d;
  EXPECT_NE(d.find(GetParam() == DType::kF32 ? "NCHW" : "NHWC"), std::string::npos) << d;
  const Tensor t = be.allocate(Shape{int64_t(1) << 20}, Layout::kNC);
  EXPECT_GE(be.peak_memory_bytes(), t.bytes());
  std::printf("  %s\n", d.c_str());
}

INSTANTIATE_TEST_SUITE_P(AllPrecisions, GpuBackendFacts, ::testing::Values(DType::kF32, DType::kBF16, DType::kF16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(dtype_name(info.param));
                         });

}  // namespace
}  // namespace rn::gpu_test
