#include "trainer/train/startup.h"

#include <sched.h>

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

int cores_per_rank(int local_size) {
  const int node = std::max(1, int(std::thread::hardware_concurrency()));
  cpu_set_t mask;
  CPU_ZERO(&mask);
  const int bound = sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : node;
  if (bound > 0 && bound < node) return bound;  // the launcher gave this rank its own cores
  return std::max(1, node / std::max(1, local_size));
}

int threads_per_rank(int configured, int local_size) {
  if (configured != 0) return configured;
  const int node = std::max(1, int(std::thread::hardware_concurrency()));
  const int share = cores_per_rank(local_size);
  return share == node ? 0 : share;
}

}  // namespace rn
