// A timeline of the first steps in Chrome's trace format (open trace.json in
// chrome://tracing or https://ui.perfetto.dev): forward, backward, fetching
// and uploading the next batch, the wait for gradients, the optimizer and
// the wait for the loss on the compute thread; each bucket's all-reduce on
// the communication thread. Shows whether communication hides behind
// backward. On a GPU the compute-thread spans are the host's time to queue
// the work (and its waits), not the kernels' time.
#pragma once

#include <string>
#include <vector>

#include "comm/gradient_sync.h"

namespace rn {

class StepTrace {
 public:
  // origin: steady-clock seconds that map to t = 0 in the file.
  explicit StepTrace(double origin) : origin_(origin) {}
  // A span on the compute thread, in steady-clock seconds.
  void span(const std::string& name, int64_t step, double begin, double end);
  // The buckets of one step (comm::GradientSync timings).
  void buckets(int64_t step, const std::vector<comm::BucketTiming>& t);
  // Writes {"traceEvents": [...]} to path; throws UserError when it cannot.
  void write(const std::string& path) const;

 private:
  struct Event {
    std::string name;
    int tid;
    int64_t step;
    double begin, end;
  };
  double origin_;
  std::vector<Event> events_;
};

}  // namespace rn
