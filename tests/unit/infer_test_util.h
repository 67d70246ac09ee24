// Helpers for the resnet-infer tests: a small checkpoint written in-process
// (cifar-resnet8, 6 classes, 16x16 input; no training needed), HDF5 image
// files, JPEG files and the logits file read back.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dataset_test_util.h"
#include "process_util.h"
#include "trainer/backend/backend.h"
#include "trainer/checkpoint/checkpoint_writer.h"
#include "trainer/checkpoint/h5_io.h"
#include "trainer/config/config.h"

namespace rn::testing_util {

inline constexpr int kInferClasses = 6;
inline constexpr int kInferImageSize = 16;
inline const std::vector<std::string> kInferNames{"cat", "dog", "fish", "bird", "frog", "newt"};

// A per-test, per-process directory (ctest runs tests in parallel processes).
inline std::string infer_dir(const std::string& name) {
  const std::string d = fresh_dir("rn_infer_" + name + "_" + std::to_string(getpid()));
  std::filesystem::create_directories(d);
  return d;
}

// BN running statistics are made non-trivial so that eval mode matters,
// with means about 0 so that activations survive every ReLU and each
// image gets logits of its own (all-positive means would zero them and
// leave only the classifier's bias).
inline std::string make_infer_checkpoint(const std::string& dir, bool with_names) {
  Config cfg;
  cfg.model.arch = "cifar-resnet8";
  cfg.model.num_classes = kInferClasses;
  cfg.data.image_size = kInferImageSize;
  ArchSpec arch;
  lookup_arch(cfg.model.arch, &arch);
  auto be = make_cpu_backend(1);
  ResNet model(*be, arch, kInferClasses);
  model.initialize(7, false);
  for (auto& b : model.params().buffers()) {
    float* p = b.value.data();  // host memory: the CPU backend
    for (int64_t i = 0; i < b.shape.numel(); ++i)
      p[i] = b.name.ends_with("running_mean") ? 0.05f * float(i % 7 - 3) : 0.5f + float(i % 7) * 0.1f;
  }
  TrainState st;
  st.step = 42;
  st.config_ini = to_ini(cfg);
  st.program_version = "test";
  if (with_names) st.class_names = kInferNames;
  const std::string path = dir + "/model.h5";
  save_checkpoint(path, model, *be, nullptr, st);
  return path;
}

// A JPEG of test_image(w, h, seed) at `path`.
inline void write_jpeg_file(const std::string& path, int w, int h, int seed) {
  const auto jpeg = encode_jpeg(test_image(w, h, seed).data(), w, h);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(jpeg.data()), long(jpeg.size()));
}

// An HDF5 file with dataset `name` of shape `dims` (floats), e.g. images (N, 3, H, W).
inline void write_h5(const std::string& path, const std::string& name, const std::vector<int64_t>& dims,
                     const std::vector<float>& values) {
  h5::H5Id f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  h5::write_f32(f.get(), name, dims, values.data());
}

// Deterministic values in about [-2, 2].
inline std::vector<float> test_floats(int64_t n, int seed) {
  std::vector<float> v(size_t(n), 0.f);
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float((i * 37 + seed * 101) % 97) / 24.f - 2.f;
  return v;
}

struct Logits {
  std::vector<int64_t> dims;
  std::vector<float> values;
  int64_t step = 0;
  std::string checkpoint;
};

inline Logits read_logits(const std::string& path) {
  h5::H5Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  Logits l;
  l.dims = h5::dims_of(f.get(), "logits");
  int64_t n = 1;
  for (int64_t d : l.dims) n *= d;
  l.values.resize(size_t(n));
  h5::read_f32(f.get(), "logits", l.values.data());
  l.step = h5::get_int_attr(f.get(), "step");
  l.checkpoint = h5::get_string_attr(f.get(), "checkpoint");
  return l;
}

}  // namespace rn::testing_util
