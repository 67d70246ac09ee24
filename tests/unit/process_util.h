// Helpers for tests that run the real binaries: run a shell command and
// capture its output and exit status; make a fresh temporary directory.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace rn::testing_util {

struct ProcessRun {
  int exit_code;
  std::string output;  // stdout + stderr
};

// Runs `cmd` with /bin/sh, stderr merged into stdout.
inline ProcessRun run_command(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  ProcessRun r{-1, ""};
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// A path under the temporary directory, removed if it exists.
inline std::string fresh_dir(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(d);
  return d.string();
}

}  // namespace rn::testing_util
