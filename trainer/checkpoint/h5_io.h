// Typed HDF5 reads and writes for checkpoints: little-endian fp32/int64
// datasets with their shapes, scalar and string attributes. Every failure
// throws; a file that is not what the caller expects is the caller's
// UserError to raise (these report HDF5 failures as internal errors).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/h5_util.h"

namespace rn::h5 {

using shards::H5Id;
using shards::H5Quiet;

// Creates group `path` (parents must exist).
H5Id create_group(hid_t loc, const std::string& path);

// dims empty: a scalar dataset.
void write_f32(hid_t loc, const std::string& name, const std::vector<int64_t>& dims, const float* data);
void write_i64(hid_t loc, const std::string& name, const std::vector<int64_t>& dims, const int64_t* data);
void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values);

void set_attr(hid_t obj, const char* name, int64_t value);
void set_attr(hid_t obj, const char* name, double value);
void set_attr(hid_t obj, const char* name, const std::string& value);

bool has_attr(hid_t obj, const char* name);
bool has_link(hid_t loc, const std::string& path);  // every component of path must exist
// Throw std::runtime_error naming the attribute when it is missing or of another class.
int64_t get_int_attr(hid_t obj, const char* name);
double get_double_attr(hid_t obj, const char* name);
std::string get_string_attr(hid_t obj, const char* name);
// The value of an open string attribute: fixed or variable length, ASCII or UTF-8.
std::string read_string(hid_t attr);

// The dataset's dimensions (empty for a scalar).
std::vector<int64_t> dims_of(hid_t loc, const std::string& name);
// Reads the whole dataset converted to fp32 / int64 (out must hold it).
void read_f32(hid_t loc, const std::string& name, float* out);
void read_i64(hid_t loc, const std::string& name, int64_t* out);
std::vector<std::string> read_strings(hid_t loc, const std::string& name);
// Names of the datasets in group `group`, recursively, as paths relative to it.
std::vector<std::string> list_datasets(hid_t loc, const std::string& group);

}  // namespace rn::h5
