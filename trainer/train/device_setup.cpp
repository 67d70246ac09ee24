#include "trainer/train/device_setup.h"

#include <fmt/format.h>

#include <cstdlib>
#include <limits>

#include "trainer/train/startup.h"

#ifdef RN_HAVE_CUDA
#include "trainer/backend/cuda/make_cuda_backend.h"
#endif

namespace rn {

bool resolve_precision(const std::string& precision, const std::string& device, DType* out) {
  if (precision != "auto") return parse_dtype(precision, out);
  *out = device == "cuda" ? DType::kBF16 : DType::kF32;
  return true;
}

DType resolved_precision(const Config& cfg) {
  DType t = DType::kF32;  // the config's validation has refused unknown names
  resolve_precision(cfg.train.precision, cfg.train.device, &t);
  return t;
}

DeviceChoice choose_device(const Config& cfg, RankPlacement where) {
  DeviceChoice c;
  BackendOptions& o = c.options;
  o.device = cfg.train.device;
  o.precision = resolved_precision(cfg);
  o.threads = threads_per_rank(cfg.train.threads, where.local_size);
  o.conv_algo = cfg.gpu.conv_algo;
  o.workspace_bytes = size_t(cfg.gpu.workspace_mb) << 20;
  o.deterministic = cfg.gpu.deterministic;
  if (o.device != "cuda") return c;
  // The loader and the host side still use CPU threads; one GPU per rank.
  int visible = 0;
#ifdef RN_HAVE_CUDA
  visible = visible_cuda_devices();
#endif
  if (visible > 0) {
    o.cuda_device = where.local_rank % visible;
    if (where.local_size > visible)
      c.note = fmt::format(
          "{} ranks on this node share {} visible GPU(s): "
          "rank {} of the node uses GPU {}",
          where.local_size, visible, where.local_rank, o.cuda_device);
    if (where.early_gpu >= 0 && where.early_gpu != o.cuda_device)
      c.note += fmt::format(
          "{}GPU {} was made current before MPI_Init from the launcher's local rank ({}), but MPI's local rank "
          "{} picks GPU {}: GPU {} keeps a CUDA context of this rank",
          c.note.empty() ? "" : "; ", where.early_gpu, launcher_local_rank(), where.local_rank, o.cuda_device,
          where.early_gpu);
  }
  return c;
}

int launcher_local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long r = std::strtol(v, &end, 10);
    return *end == '\0' && r >= 0 && r <= std::numeric_limits<int>::max() ? int(r) : -1;
  }
  return -1;
}

int bind_gpu_before_mpi(const Config& cfg) {
#ifdef RN_HAVE_CUDA
  const int local = launcher_local_rank();
  if (cfg.train.device != "cuda" || local < 0) return -1;
  const int visible = visible_cuda_devices();
  if (visible <= 0) return -1;
  const int gpu = local % visible;
  return make_cuda_device_current(gpu) ? gpu : -1;
#else
  (void)cfg;
  return -1;
#endif
}

std::unique_ptr<Backend> make_rank_backend(const Config& cfg, RankPlacement where, DeviceChoice* chosen) {
  DeviceChoice c = choose_device(cfg, where);
  auto be = make_backend(c.options);
  if (chosen) *chosen = std::move(c);
  return be;
}

}  // namespace rn
