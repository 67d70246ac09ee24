// Comparing checkpoints dataset by dataset (the resume tests, CPU and GPU):
// every /model and /optimizer dataset as raw floats, and a bit-for-bit check.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "trainer/checkpoint/h5_io.h"

namespace rn::testing_util {

// Every dataset of a checkpoint (model, optimizer) as raw floats.
inline std::map<std::string, std::vector<float>> all_datasets(const std::string& path) {
  std::map<std::string, std::vector<float>> out;
  h5::H5Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  for (const char* group : {"model", "optimizer"})
    for (const auto& name : h5::list_datasets(f.get(), group)) {
      const std::string full = std::string(group) + "/" + name;
      int64_t n = 1;
      for (int64_t d : h5::dims_of(f.get(), full)) n *= d;
      std::vector<float> v(static_cast<size_t>(n));
      h5::read_f32(f.get(), full, v.data());
      out[full] = std::move(v);
    }
  return out;
}

// Every weight, BN statistic and momentum buffer of a and b has the same bits.
inline void expect_bit_identical(const std::string& a, const std::string& b) {
  const auto da = all_datasets(a), db = all_datasets(b);
  ASSERT_EQ(da.size(), db.size());
  ASSERT_GT(da.size(), 40u);
  ASSERT_TRUE(da.count("optimizer/momentum/fc.weight"));
  for (const auto& [name, va] : da) {
    ASSERT_TRUE(db.count(name)) << name;
    const auto& vb = db.at(name);
    ASSERT_EQ(va.size(), vb.size()) << name;
    EXPECT_EQ(0, std::memcmp(va.data(), vb.data(), va.size() * sizeof(float))) << name << " differs";
  }
}

}  // namespace rn::testing_util
