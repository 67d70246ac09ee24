#include "trainer/backend/cuda/cuda_device.h"

#include <fmt/format.h>

#include <cstdlib>

#include "trainer/backend/cuda/cuda_check.h"
#include "trainer/backend/cuda/make_cuda_backend.h"

namespace rn {

int visible_cuda_devices(std::string* why_none) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why_none) *why_none = fmt::format("{} ({})", cudaGetErrorString(e), cudaGetErrorName(e));
    (void)cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  if (n == 0 && why_none) *why_none = "no device";
  return n;
}

bool make_cuda_device_current(int ordinal) {
  if (cudaSetDevice(ordinal) == cudaSuccess) return true;
  (void)cudaGetLastError();
  return false;
}

namespace cuda {
namespace {

// cudnnGetVersion: major*10000 + minor*100 + patch since 9.0, major*1000 +
// minor*100 + patch before.
std::string version_str(size_t v) {
  return v >= 10000 ? fmt::format("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
                    : fmt::format("{}.{}.{}", v / 1000, v / 100 % 10, v % 100);
}
std::string cuda_version_str(int v) { return fmt::format("{}.{}", v / 1000, v % 1000 / 10); }

}  // namespace

size_t loaded_cudnn_version() {
  if (const char* fake = std::getenv("RN_TEST_CUDNN_VERSION")) return std::strtoull(fake, nullptr, 10);
  return cudnnGetVersion();
}

std::string DeviceFacts::str() const {
  return fmt::format(
      "GPU {} of {}: {} (compute capability {}.{}, {:.1f} GiB), driver {}, "
      "runtime {}, cuDNN {} (for CUDA {})",
      ordinal, visible, name, cc_major, cc_minor, double(total_bytes) / double(1 << 30),
      cuda_version_str(driver_version), cuda_version_str(runtime_version), version_str(cudnn_version),
      cuda_version_str(cudnn_cudart_version));
}

DeviceFacts open_device(int ordinal) {
  DeviceFacts f;
  f.ordinal = ordinal;
  f.cudnn_version = loaded_cudnn_version();
  if (f.cudnn_version < kMinCudnnVersion)
    throw UserError(
        fmt::format("--device cuda (train.device) needs cuDNN >= {}, but the loaded libcudnn is {}. "
                    "Put a cuDNN 9 on the library path "
                    "(LD_LIBRARY_PATH, e.g. the cluster's cudnn module or a PyTorch "
                    "environment's nvidia/cudnn/lib), or use "
                    "--device cpu.",
                    version_str(kMinCudnnVersion), version_str(f.cudnn_version)));
  // A cuDNN built for another CUDA major fails inside cudnnCreate with an
  // opaque internal error: say so first. Needs no device.
  CUDA_CHECK(cudaRuntimeGetVersion(&f.runtime_version));
  f.cudnn_cudart_version = static_cast<int>(cudnnGetCudartVersion());
  if (f.cudnn_cudart_version / 1000 != f.runtime_version / 1000)
    throw UserError(fmt::format(
        "the loaded libcudnn {} was built for CUDA {}, but this program uses the CUDA {} runtime. Put a cuDNN 9 "
        "for CUDA {} on the library path (LD_LIBRARY_PATH: the cluster's matching cudnn module, or a PyTorch "
        "environment's nvidia/cudnn/lib for cu{}), or use --device cpu.",
        version_str(f.cudnn_version), cuda_version_str(f.cudnn_cudart_version), cuda_version_str(f.runtime_version),
        f.runtime_version / 1000, f.runtime_version / 1000));
  std::string why;
  f.visible = visible_cuda_devices(&why);
  const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::string visible_env = cvd ? fmt::format("CUDA_VISIBLE_DEVICES='{}'", cvd) : "CUDA_VISIBLE_DEVICES unset";
  int driver = 0;
  if (f.visible == 0 && cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0 && driver < f.runtime_version)
    throw UserError(fmt::format(
        "--device cuda (train.device), but the NVIDIA driver supports CUDA {} and this program was built with CUDA {} "
        "(cudaGetDeviceCount: {}). Use a node with a newer driver, rebuild with a CUDA toolkit <= {}, or use --device "
        "cpu.",
        cuda_version_str(driver), cuda_version_str(f.runtime_version), why, cuda_version_str(driver)));
  if (f.visible == 0)
    throw UserError(
        fmt::format("--device cuda (train.device), but this process sees no CUDA device "
                    "(cudaGetDeviceCount: {}; {}). Run on a GPU node "
                    "(nvidia-smi lists its GPUs), ask Slurm for them "
                    "(--gres=gpu:N or --gpus-per-task=1), or use --device cpu.",
                    why, visible_env));
  if (ordinal < 0 || ordinal >= f.visible)
    throw UserError(fmt::format("GPU {} asked for, but this process sees {} ({})", ordinal, f.visible, visible_env));
  CUDA_CHECK(cudaSetDevice(ordinal));
  process_identity().device = fmt::format("cuda:{}", ordinal);
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, ordinal));
  f.name = p.name;
  f.cc_major = p.major;
  f.cc_minor = p.minor;
  f.total_bytes = p.totalGlobalMem;
  CUDA_CHECK(cudaDriverGetVersion(&f.driver_version));
  if (f.cc_major < 8)
    throw UserError(
        fmt::format("{} has compute capability {}.{}; the CUDA backend's "
                    "kernels are built for >= 8.0 "
                    "(A100, H100 and newer). Use --device cpu on this machine.",
                    f.name, f.cc_major, f.cc_minor));
  return f;
}

}  // namespace cuda
}  // namespace rn
