#include "trainer/checkpoint/h5_io.h"

#include <stdexcept>

#include "trainer/checkpoint/h5_check.h"

namespace rn::h5 {
namespace {

H5Id make_space(const std::vector<int64_t>& dims) {
  if (dims.empty()) return H5Id(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  std::vector<hsize_t> d(dims.begin(), dims.end());
  return H5Id(H5_CHECK(H5Screate_simple(int(d.size()), d.data(), nullptr)), H5Sclose);
}

void write(hid_t loc, const std::string& name, const std::vector<int64_t>& dims, hid_t file_type, hid_t mem_type,
           const void* data) {
  H5Id space = make_space(dims);
  H5Id lcpl(H5_CHECK(H5Pcreate(H5P_LINK_CREATE)), H5Pclose);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1));  // "optimizer/momentum/<name>" creates its groups
  H5Id set(H5_CHECK(H5Dcreate2(loc, name.c_str(), file_type, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT)),
           H5Dclose);
  H5_CHECK(H5Dwrite(set.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

void set_attr_raw(hid_t obj, const char* name, hid_t type, const void* value) {
  if (H5Aexists(obj, name) > 0) H5_CHECK(H5Adelete(obj, name));
  H5Id space(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Id attr(H5_CHECK(H5Acreate2(obj, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  H5_CHECK(H5Awrite(attr.get(), type, value));
}

H5Id open_attr(hid_t obj, const char* name, H5T_class_t want, const char* want_name) {
  if (H5Aexists(obj, name) <= 0) throw std::runtime_error(std::string("attribute '") + name + "' is missing");
  H5Id attr(H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)), H5Aclose);
  H5Id type(H5_CHECK(H5Aget_type(attr.get())), H5Tclose);
  if (H5Tget_class(type.get()) != want)
    throw std::runtime_error(std::string("attribute '") + name + "' is not " + want_name);
  return attr;
}

H5Id open_dataset(hid_t loc, const std::string& name) {
  const hid_t id = H5Dopen2(loc, name.c_str(), H5P_DEFAULT);
  if (id < 0) throw std::runtime_error("dataset '" + name + "' is missing or unreadable");
  return H5Id(id, H5Dclose);
}

}  // namespace

H5Id create_group(hid_t loc, const std::string& path) {
  return H5Id(H5_CHECK(H5Gcreate2(loc, path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)), H5Gclose);
}

void write_f32(hid_t loc, const std::string& name, const std::vector<int64_t>& dims, const float* data) {
  write(loc, name, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data);
}

void write_i64(hid_t loc, const std::string& name, const std::vector<int64_t>& dims, const int64_t* data) {
  write(loc, name, dims, H5T_STD_I64LE, H5T_NATIVE_INT64, data);
}

void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values) {
  H5Id type(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  H5_CHECK(H5Tset_size(type.get(), H5T_VARIABLE));
  H5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  write(loc, name, {int64_t(values.size())}, type.get(), type.get(), ptrs.data());
}

void set_attr(hid_t obj, const char* name, int64_t value) { set_attr_raw(obj, name, H5T_NATIVE_INT64, &value); }
void set_attr(hid_t obj, const char* name, double value) { set_attr_raw(obj, name, H5T_NATIVE_DOUBLE, &value); }
// Variable-length UTF-8, as h5py writes a Python str (and reads it back as str, not bytes).
void set_attr(hid_t obj, const char* name, const std::string& value) {
  H5Id type(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  H5_CHECK(H5Tset_size(type.get(), H5T_VARIABLE));
  H5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  const char* p = value.c_str();
  set_attr_raw(obj, name, type.get(), &p);
}

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

bool has_link(hid_t loc, const std::string& path) {
  size_t pos = 0;
  while (true) {
    pos = path.find('/', pos + 1);
    const std::string prefix = path.substr(0, pos);
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

int64_t get_int_attr(hid_t obj, const char* name) {
  H5Id attr = open_attr(obj, name, H5T_INTEGER, "an integer");
  int64_t v = 0;
  H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &v));
  return v;
}

double get_double_attr(hid_t obj, const char* name) {
  H5Id attr = open_attr(obj, name, H5T_FLOAT, "a floating-point number");
  double v = 0;
  H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v));
  return v;
}

std::string read_string(hid_t attr) {
  H5Id type(H5_CHECK(H5Aget_type(attr)), H5Tclose);
  if (H5Tis_variable_str(type.get()) > 0) {  // h5py writes Python str attributes this way
    char* p = nullptr;
    H5Id mem(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
    H5_CHECK(H5Tset_size(mem.get(), H5T_VARIABLE));
    H5_CHECK(H5Tset_cset(mem.get(), H5Tget_cset(type.get())));  // HDF5 will not convert UTF-8 to ASCII
    H5_CHECK(H5Aread(attr, mem.get(), &p));
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  std::string s(H5Tget_size(type.get()), '\0');
  H5_CHECK(H5Aread(attr, type.get(), s.data()));
  s.resize(s.find('\0') == std::string::npos ? s.size() : s.find('\0'));
  return s;
}

std::string get_string_attr(hid_t obj, const char* name) {
  H5Id attr = open_attr(obj, name, H5T_STRING, "a string");
  return read_string(attr.get());
}

std::vector<int64_t> dims_of(hid_t loc, const std::string& name) {
  H5Id set = open_dataset(loc, name);
  H5Id space(H5_CHECK(H5Dget_space(set.get())), H5Sclose);
  const int rank = H5_CHECK(H5Sget_simple_extent_ndims(space.get()));
  std::vector<hsize_t> d(size_t(rank), 0);
  if (rank > 0) H5_CHECK(H5Sget_simple_extent_dims(space.get(), d.data(), nullptr));
  return std::vector<int64_t>(d.begin(), d.end());
}

void read_f32(hid_t loc, const std::string& name, float* out) {
  H5Id set = open_dataset(loc, name);
  if (H5Dread(set.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    throw std::runtime_error("dataset '" + name + "' cannot be read (truncated or damaged file?)");
}

void read_i64(hid_t loc, const std::string& name, int64_t* out) {
  H5Id set = open_dataset(loc, name);
  if (H5Dread(set.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    throw std::runtime_error("dataset '" + name + "' cannot be read (truncated or damaged file?)");
}

std::vector<std::string> read_strings(hid_t loc, const std::string& name) {
  H5Id set = open_dataset(loc, name);
  const std::vector<int64_t> d = dims_of(loc, name);
  if (d.size() != 1) throw std::runtime_error("dataset '" + name + "' is not a list of strings");
  H5Id mem(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  H5_CHECK(H5Tset_size(mem.get(), H5T_VARIABLE));
  H5Id file_type(H5_CHECK(H5Dget_type(set.get())), H5Tclose);
  H5_CHECK(H5Tset_cset(mem.get(), H5Tget_cset(file_type.get())));  // UTF-8 stays UTF-8
  std::vector<char*> ptrs(size_t(d[0]), nullptr);
  if (H5Dread(set.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    throw std::runtime_error("dataset '" + name + "' cannot be read as strings");
  std::vector<std::string> out;
  for (char* p : ptrs) {
    out.emplace_back(p ? p : "");
    H5free_memory(p);
  }
  return out;
}

std::vector<std::string> list_datasets(hid_t loc, const std::string& group) {
  struct Ctx {
    std::vector<std::string> names;
  } ctx;
  if (!has_link(loc, group)) return {};
  H5Id g(H5_CHECK(H5Gopen2(loc, group.c_str(), H5P_DEFAULT)), H5Gclose);
  // HDF5 1.10's visit API (Debian 12); H5Ovisit3 needs 1.12.
  auto visit = [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    if (info->type == H5O_TYPE_DATASET) static_cast<Ctx*>(data)->names.emplace_back(name);
    return 0;
  };
  H5_CHECK(H5Ovisit2(g.get(), H5_INDEX_NAME, H5_ITER_INC, visit, &ctx, H5O_INFO_BASIC));
  return ctx.names;
}

}  // namespace rn::h5
