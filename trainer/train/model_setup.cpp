#include "trainer/train/model_setup.h"

#include "trainer/core/error.h"

namespace rn {

ModelChoice resolve_model(const ModelConfig& m) {
  ModelChoice r;
  if (!lookup_arch(m.arch, &r.arch)) throw UserError("config error: model.arch = '" + m.arch + "' is not known");
  r.shortcut = r.arch.shortcut;
  if (m.shortcut != "auto" && !parse_shortcut(m.shortcut, &r.shortcut))
    throw UserError("config error: model.shortcut = '" + m.shortcut + "'; allowed: auto, A, B, none");
  return r;
}

}  // namespace rn
