#include "trainer/core/error.h"

#include <fmt/format.h>

namespace rn {

ProcessIdentity& process_identity() {
  static ProcessIdentity id;
  return id;
}

void throw_internal(const char* call, const char* file, int line, const std::string& detail) {
  const auto& id = process_identity();
  throw InternalError(fmt::format("{} failed at {}:{} on rank {} (device {}){}{}", call, file, line,
                                  id.rank, id.device, detail.empty() ? "" : ": ", detail));
}

}  // namespace rn
