#include "trainer/train/run_log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "trainer/core/error.h"

namespace rn {

RunLog::RunLog(const std::string& path) : out_(path, std::ios::app) {
  if (!out_) throw UserError("cannot write " + path + ": check that train.output_dir is writable");
}

void RunLog::line(const std::string& text) {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  out_ << stamp << "  " << text << '\n';
  out_.flush();
  std::fprintf(stderr, "%s\n", text.c_str());
}

ProgressLine::ProgressLine() : tty_(isatty(STDERR_FILENO) != 0) {}

void ProgressLine::update(const std::string& text) {
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    open_ = true;
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (tty_ && open_) std::fprintf(stderr, "\n");
  open_ = false;
}

}  // namespace rn
