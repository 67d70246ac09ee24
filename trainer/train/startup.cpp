#include "trainer/train/startup.h"

#include <algorithm>
#include <string>
#include <thread>

#include "comm/communicator.h"
#include "trainer/core/error.h"

namespace rn {

void agree_on_startup(comm::Communicator* world, const std::function<void()>& work) {
  std::string error;
  try {
    work();
  } catch (const UserError& e) {
    error = e.what();
  }
  int64_t failed = error.empty() ? 0 : 1;
  if (world && world->size() > 1) world->allreduce_max(&failed, 1, "start-up check");
  if (!error.empty()) throw AgreedError(error);
  if (failed) throw AgreedError("another rank could not start (its message says why); stopping");
}

int threads_per_rank(int configured, int local_size) {
  if (configured != 0 || local_size <= 1) return configured;
  return std::max(1, int(std::thread::hardware_concurrency()) / local_size);
}

}  // namespace rn
