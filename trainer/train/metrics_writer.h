// metrics.jsonl: one JSON object per line, flushed as written, so a user
// can `tail -f` or load it mid-run (pandas.read_json(lines=True)).
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace rn {

class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& path);
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
  std::string path_;
};

}  // namespace rn
