#include "trainer/train/device_setup.h"

#include <fmt/format.h>

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
  }
  return c;
}

std::unique_ptr<Backend> make_rank_backend(const Config& cfg, RankPlacement where, DeviceChoice* chosen) {
  DeviceChoice c = choose_device(cfg, where);
  auto be = make_backend(c.options);
  if (chosen) *chosen = std::move(c);
  return be;
}

}  // namespace rn
