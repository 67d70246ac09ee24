#include "trainer/infer/batch_inference.h"

#include <fmt/format.h>
#include <hdf5.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "trainer/checkpoint/h5_io.h"

namespace rn {
namespace {

namespace fs = std::filesystem;

struct ImagesDataset {
  h5::H5Id file, set;
  int64_t n = 0, h = 0, w = 0;
};

ImagesDataset open_images(const std::string& path, int min_side) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError("--input " + path + " does not exist; check the path");
  if (fs::is_directory(path, ec) || H5Fis_hdf5(path.c_str()) <= 0)
    throw UserError("--input " + path + " is not an HDF5 file; give an .h5 file with a dataset 'images'");
  ImagesDataset d;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw UserError("--input " + path + " cannot be opened: the HDF5 file is damaged or truncated");
  d.file = h5::H5Id(f, H5Fclose);
  if (!h5::has_link(f, "images"))
    throw UserError("--input " + path + " has no dataset 'images'; it needs images (N, 3, H, W) float32, normalised");
  const hid_t set = H5Dopen2(f, "images", H5P_DEFAULT);
  if (set < 0) throw UserError("--input " + path + ": 'images' is not a dataset; it must be (N, 3, H, W) float32");
  d.set = h5::H5Id(set, H5Dclose);
  h5::H5Id type(H5_CHECK(H5Dget_type(set)), H5Tclose);
  const std::vector<int64_t> dims = h5::dims_of(f, "images");
  const auto shape = [&] {
    std::string s;
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return "(" + s + ")";
  };
  if (H5Tget_class(type.get()) != H5T_FLOAT)
    throw UserError("--input " + path +
                    ": 'images' holds integers, not floats; store the normalised images (pixel/255 "
                    "- mean) / std as float32 (N, 3, H, W)");
  if (dims.size() != 4 || dims[1] != 3)
    throw UserError(fmt::format("--input {}: 'images' is {} but must be (N, 3, H, W): {}", path, shape(),
                                dims.size() != 4 ? "4 dimensions" : "3 colour channels (RGB) in dimension 1, NCHW"));
  d.n = dims[0];
  d.h = dims[2];
  d.w = dims[3];
  if (d.h < min_side || d.w < min_side)
    throw UserError(fmt::format("--input {}: images are {}x{} but this model needs at least {}x{}", path, d.h, d.w,
                                min_side, min_side));
  return d;
}

// Rows [first, first + count) of a dataset (all of its other dimensions).
h5::H5Id rows_space(hid_t set, int64_t first, int64_t count) {
  h5::H5Id space(H5_CHECK(H5Dget_space(set)), H5Sclose);
  const int rank = H5_CHECK(H5Sget_simple_extent_ndims(space.get()));
  std::vector<hsize_t> dims(size_t(rank), 0), start(size_t(rank), 0);
  H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  start[0] = hsize_t(first);
  dims[0] = hsize_t(count);
  H5_CHECK(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr));
  return space;
}

h5::H5Id memory_space(int64_t count, int64_t row) {
  const hsize_t n = hsize_t(count * row);
  return h5::H5Id(H5_CHECK(H5Screate_simple(1, &n, nullptr)), H5Sclose);
}

}  // namespace

BatchInferenceResult run_batch_inference(CheckpointModel& model, const std::string& input, const std::string& output) {
  const auto t0 = std::chrono::steady_clock::now();
  h5::H5Quiet quiet;
  ImagesDataset in = open_images(input, model.min_input_side());
  const int64_t k = model.num_classes(), per_image = 3 * in.h * in.w;

  const fs::path out_path(output);
  const std::string tmp = (out_path.parent_path() / fmt::format(".{}.tmp", out_path.filename().string())).string();
  std::error_code ec;
  if (out_path.filename().empty() || fs::is_directory(out_path, ec))
    throw UserError("--output " + output + " is a directory; give a file name such as " + output + "/logits.h5");
  try {
    {
      const hid_t f = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
      if (f < 0)
        throw UserError("--output " + output + " cannot be written (creating " + tmp +
                        " failed): check that its directory exists and is writable");
      h5::H5Id file(f, H5Fclose);
      const hsize_t dims[2] = {hsize_t(in.n), hsize_t(k)};
      h5::H5Id space(H5_CHECK(H5Screate_simple(2, dims, nullptr)), H5Sclose);
      h5::H5Id set(
          H5_CHECK(H5Dcreate2(f, "logits", H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
          H5Dclose);
      auto read = [&](int64_t first, int64_t count, float* host) {
        h5::H5Id src = rows_space(in.set.get(), first, count);
        h5::H5Id src_mem = memory_space(count, per_image);
        if (H5Dread(in.set.get(), H5T_NATIVE_FLOAT, src_mem.get(), src.get(), H5P_DEFAULT, host) < 0)
          throw UserError(fmt::format("--input {}: images {}..{} cannot be read (truncated or damaged file?)", input,
                                      first, first + count - 1));
      };
      auto write = [&](int64_t first, int64_t count, const float* logits) {
        h5::H5Id dst = rows_space(set.get(), first, count);
        h5::H5Id dst_mem = memory_space(count, k);
        H5_CHECK(H5Dwrite(set.get(), H5T_NATIVE_FLOAT, dst_mem.get(), dst.get(), H5P_DEFAULT, logits));
      };
      model.run(in.n, int(in.h), int(in.w), read, write);
      const CheckpointInfo& ck = model.info();
      h5::set_attr(f, "checkpoint", ck.path);
      h5::set_attr(f, "arch", ck.arch);
      h5::set_attr(f, "step", ck.state.step);
      h5::set_attr(f, "num_classes", ck.num_classes);
      h5::set_attr(f, "program_version", std::string("resnet-infer " RN_VERSION));
      H5_CHECK(H5Fflush(f, H5F_SCOPE_GLOBAL));
    }
    if (std::rename(tmp.c_str(), output.c_str()) != 0)
      throw UserError("--output " + output + " cannot be written (renaming " + tmp +
                      " failed): check that its directory is writable");
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {in.n, in.h, in.w, secs};
}

}  // namespace rn
