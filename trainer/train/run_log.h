// The human log: every line goes to <output_dir>/train.log and to stderr,
// prefixed with the wall-clock time. The terminal progress line is separate
// (ProgressLine) and never enters the log file.
#pragma once

#include <fstream>
#include <string>

namespace rn {

class RunLog {
 public:
  explicit RunLog(const std::string& path);
  void line(const std::string& text);

 private:
  std::ofstream out_;
};

// One self-overwriting status line on a terminal; a plain line every call
// when stderr is not a terminal (batch jobs' log files).
class ProgressLine {
 public:
  ProgressLine();
  void update(const std::string& text);
  void finish();

 private:
  bool tty_;
  bool open_ = false;
};

}  // namespace rn
