// The small synthetic training job of the end-to-end tests (CPU and GPU) and
// reading its metrics.jsonl.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "trainer/config/config.h"

namespace rn::testing_util {

// cifar-resnet8 on 16 px synthetic images, 1024 a epoch, batch 32: 96 steps
// in 3 epochs on one rank (CPU, 2 threads), output in a fresh directory.
inline Config small_job(const std::string& dir) {
  Config c;
  c.model.arch = "cifar-resnet8";
  c.model.num_classes = 10;
  c.data.image_size = 16;
  c.data.synthetic_samples = 1024;
  c.data.val_samples = 256;
  c.optim.schedule = "cosine";
  c.optim.warmup_epochs = 0.5;
  c.train.batch_size = 32;
  c.train.epochs = 3;
  c.train.threads = 2;
  c.train.log_every = 4;
  c.train.output_dir = (std::filesystem::temp_directory_path() / dir).string();
  std::filesystem::remove_all(c.train.output_dir);
  return c;
}

// The metrics.jsonl records of one type ("train", "eval") in dir.
inline std::vector<nlohmann::json> read_metrics(const std::string& dir, const std::string& type) {
  std::vector<nlohmann::json> out;
  std::ifstream in(std::filesystem::path(dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == type) out.push_back(j);
  }
  return out;
}

}  // namespace rn::testing_util
