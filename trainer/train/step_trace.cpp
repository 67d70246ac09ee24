#include "trainer/train/step_trace.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "trainer/core/error.h"

namespace rn {

void StepTrace::span(const std::string& name, int64_t step, double begin, double end) {
  events_.push_back(Event{name, 1, step, begin, end});
}

void StepTrace::buckets(int64_t step, const std::vector<comm::BucketTiming>& t) {
  for (size_t i = 0; i < t.size(); ++i)
    events_.push_back(Event{"allreduce bucket " + std::to_string(i), 2, step, t[i].start, t[i].end});
}

void StepTrace::write(const std::string& path) const {
  nlohmann::json ev = nlohmann::json::array();
  ev.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", 1}, {"args", {{"name", "compute"}}}});
  ev.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", 2}, {"args", {{"name", "communication"}}}});
  for (const auto& e : events_)
    ev.push_back({{"name", e.name}, {"ph", "X"}, {"pid", 0}, {"tid", e.tid},
                  {"ts", (e.begin - origin_) * 1e6}, {"dur", (e.end - e.begin) * 1e6}, {"args", {{"step", e.step}}}});
  std::ofstream out(path);
  out << nlohmann::json{{"traceEvents", ev}, {"displayTimeUnit", "ms"}}.dump(1) << "\n";
  if (!out) throw UserError("cannot write the step trace " + path);
}

}  // namespace rn
