// Helpers for tests that run the real binaries: run a shell command and
// capture its output and exit status; make a fresh temporary directory.
#pragma once

#include <gtest/gtest.h>
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

// The failure of `--device cuda` where no GPU can be had (no device, or a
// build without the CUDA backend): exit 2, the reason, and the way out.
inline ::testing::AssertionResult failed_for_want_of_a_gpu(const ProcessRun& r) {
  const bool reason = r.output.find("no CUDA device") != std::string::npos ||
                      r.output.find("without the CUDA backend") != std::string::npos;
  if (r.exit_code == 2 && reason && r.output.find("--device cpu") != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "want exit 2 naming the missing GPU and --device cpu; got exit "
                                       << r.exit_code << ":\n"
                                       << r.output;
}

// A path under the temporary directory, removed if it exists.
inline std::string fresh_dir(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(d);
  return d.string();
}

}  // namespace rn::testing_util
