#include "trainer/checkpoint/checkpoint_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "trainer/checkpoint/h5_check.h"
#include "trainer/checkpoint/h5_io.h"

namespace rn {
namespace {

std::vector<int64_t> dims(const Shape& s) { return std::vector<int64_t>(s.begin(), s.end()); }

// Forces the bytes of `path` (a file or a directory) to stable storage.
void sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return;  // best effort: the rename below is what makes it atomic
  ::fsync(fd);
  ::close(fd);
}

// The tensor as a host array: its own memory where the backend allows
// (CPU), else a copy kept in `storage`.
const float* host_floats(Backend& be, const Tensor& t, std::vector<float>& storage) {
  if (const float* p = be.host_view(t)) return p;
  storage.resize(size_t(t.shape().numel()));
  be.to_host(t, storage.data());
  return storage.data();
}

}  // namespace

void save_checkpoint(const std::string& path, ResNet& model, Backend& be, const Tensor* velocity, const TrainState& st,
                     const std::function<void(int, int)>& progress) {
  namespace fs = std::filesystem;
  const fs::path final_path(path);
  const std::string tmp = (final_path.parent_path() / fmt::format(".{}.tmp", final_path.filename().string())).string();
  be.synchronize();
  ParamStore& ps = model.params();
  std::vector<float> value_copy, buffer_copy, momentum_copy;
  const float* values = host_floats(be, ps.flat_values(), value_copy);
  const float* buffers = host_floats(be, ps.flat_buffers(), buffer_copy);
  const float* momentum = velocity ? host_floats(be, *velocity, momentum_copy) : nullptr;
  const int total = int(ps.params().size() * (velocity ? 2 : 1) + ps.buffers().size());
  int written = 0;
  auto done_one = [&] {
    if (progress) progress(++written, total);
  };
  {
    h5::H5Quiet quiet;
    // The 1.8+ file format indexes large groups (resnet152: ~1400 datasets)
    // compactly instead of the original symbol tables, which are much slower to write.
    h5::H5Id fapl(H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)), H5Pclose);
    H5_CHECK(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST));
    const hid_t id = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    if (id < 0)
      throw UserError("cannot create checkpoint file " + tmp + ": check that the directory exists and is writable");
    h5::H5Id file(id, H5Fclose);
    const hid_t f = file.get();
    for (const auto& p : ps.params()) {
      h5::write_f32(f, "model/" + p.name, dims(p.shape), values + p.offset);
      done_one();
    }
    for (const auto& b : ps.buffers()) {
      if (b.name.ends_with(".num_batches_tracked")) {  // PyTorch keeps a 0-d int64
        const int64_t count = std::llround(buffers[b.offset]);
        h5::write_i64(f, "model/" + b.name, {}, &count);
      } else {
        h5::write_f32(f, "model/" + b.name, dims(b.shape), buffers + b.offset);
      }
      done_one();
    }
    if (velocity) {
      for (const auto& p : ps.params()) {
        h5::write_f32(f, "optimizer/momentum/" + p.name, dims(p.shape), momentum + p.offset);
        done_one();
      }
    }
    std::vector<int64_t> cursors;
    for (const auto& c : st.rank_cursors) cursors.insert(cursors.end(), {c.epoch, c.sample});
    if (!st.rank_cursors.empty())
      h5::write_i64(f, "state/rank_cursors", {int64_t(st.rank_cursors.size()), 2}, cursors.data());
    if (!st.class_names.empty()) h5::write_strings(f, "classes", st.class_names);

    h5::set_attr(f, "format", std::string("resnet-checkpoint"));
    h5::set_attr(f, "format_version", kCheckpointFormatVersion);
    h5::set_attr(f, "program_version", st.program_version);
    h5::set_attr(f, "arch", model.arch().name);
    h5::set_attr(f, "num_classes", int64_t(model.num_classes()));
    h5::set_attr(f, "step", st.step);
    h5::set_attr(f, "epoch", st.cursor.epoch);
    h5::set_attr(f, "epoch_sample", st.cursor.sample);
    h5::set_attr(f, "epoch_position", st.epoch_position);
    h5::set_attr(f, "epoch_size", st.epoch_size);
    h5::set_attr(f, "lr", st.lr);
    h5::set_attr(f, "base_lr", st.base_lr);
    h5::set_attr(f, "lr_schedule", st.lr_schedule);
    h5::set_attr(f, "world_size", st.world_size);
    h5::set_attr(f, "batch_size", st.batch_size);
    h5::set_attr(f, "seed", std::to_string(st.seed));  // uint64: as text, no sign games
    h5::set_attr(f, "rng", std::string("counter-based: every draw is a function of (seed, epoch, sample index)"));
    h5::set_attr(f, "config", st.config_ini);
    h5::set_attr(f, "has_optimizer_state", int64_t(velocity ? 1 : 0));
    H5_CHECK(H5Fflush(f, H5F_SCOPE_GLOBAL));
    h5::set_attr(f, "complete", int64_t(1));  // last: a file without it was cut short
    H5_CHECK(H5Fflush(f, H5F_SCOPE_GLOBAL));
  }
  sync_path(tmp, O_RDONLY);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw UserError("cannot rename checkpoint " + tmp + " to " + path + ": check the output directory");
  sync_path(final_path.parent_path().empty() ? "." : final_path.parent_path().string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace rn
