// The model a ModelConfig names: architecture and shortcut type, with the
// user-facing errors for unknown names.
#pragma once

#include "trainer/config/config.h"
#include "trainer/model/arch.h"

namespace rn {

struct ModelChoice {
  ArchSpec arch;
  ShortcutType shortcut;
};

// Throws UserError for an unknown model.arch or model.shortcut.
ModelChoice resolve_model(const ModelConfig& m);

}  // namespace rn
