#include "trainer/checkpoint/checkpoint_writer.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "trainer/checkpoint/h5_check.h"

namespace rn {
namespace {

// Closes an HDF5 handle on scope exit.
struct H5Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~H5Handle() { if (id >= 0) close(id); }
};

void write_dataset(hid_t file, const std::string& name, const Shape& shape, hid_t mem_type, hid_t file_type,
                   const void* data) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  H5Handle space{H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)), H5Sclose};
  H5Handle set{H5_CHECK(H5Dcreate2(file, name.c_str(), file_type, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
               H5Dclose};
  H5_CHECK(H5Dwrite(set.id, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

void write_attr(hid_t obj, const char* name, hid_t type, const void* value) {
  H5Handle space{H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose};
  H5Handle attr{H5_CHECK(H5Acreate2(obj, name, type, space.id, H5P_DEFAULT, H5P_DEFAULT)), H5Aclose};
  H5_CHECK(H5Awrite(attr.id, type, value));
}

void write_string_attr(hid_t obj, const char* name, const std::string& value) {
  H5Handle type{H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose};
  H5_CHECK(H5Tset_size(type.id, std::max<size_t>(1, value.size())));
  write_attr(obj, name, type.id, value.c_str());
}

}  // namespace

void save_checkpoint(const std::string& path, ResNet& model, Backend& be, const CheckpointMeta& meta) {
  const std::string tmp = path + ".tmp";
  {
    H5Handle file{H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
    if (file.id < 0) throw UserError("cannot create checkpoint " + tmp + ": check that train.output_dir is writable");
    std::vector<float> host;
    be.synchronize();
    for (const auto& p : model.params().params()) {
      host.resize(static_cast<size_t>(p.shape.numel()));
      be.to_host(p.value, host.data());
      write_dataset(file.id, p.name, p.shape, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, host.data());
    }
    for (const auto& b : model.params().buffers()) {
      host.resize(static_cast<size_t>(b.shape.numel()));
      be.to_host(b.value, host.data());
      if (b.name.ends_with(".num_batches_tracked")) {
        const int64_t count = std::llround(host[0]);  // PyTorch stores a 0-d int64
        H5Handle space{H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose};
        H5Handle set{H5_CHECK(H5Dcreate2(file.id, b.name.c_str(), H5T_STD_I64LE, space.id, H5P_DEFAULT, H5P_DEFAULT,
                                         H5P_DEFAULT)),
                     H5Dclose};
        H5_CHECK(H5Dwrite(set.id, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &count));
      } else {
        write_dataset(file.id, b.name, b.shape, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, host.data());
      }
    }
    const int32_t version = 1;
    write_attr(file.id, "format_version", H5T_NATIVE_INT32, &version);
    write_string_attr(file.id, "arch", model.arch().name);
    write_attr(file.id, "step", H5T_NATIVE_INT64, &meta.step);
    write_attr(file.id, "epoch", H5T_NATIVE_DOUBLE, &meta.epoch);
    write_string_attr(file.id, "config", meta.config_ini);
    H5_CHECK(H5Fflush(file.id, H5F_SCOPE_GLOBAL));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw UserError("cannot move checkpoint " + tmp + " to " + path + ": check the output directory");
}

}  // namespace rn
