#include "trainer/checkpoint/checkpoint_reader.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <map>
#include <stdexcept>

#include "trainer/checkpoint/h5_io.h"

namespace rn {
namespace {

std::string shape_str(const std::vector<int64_t>& d) { return fmt::format("[{}]", fmt::join(d, ",")); }

h5::H5Id open_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw UserError("checkpoint " + path + " does not exist; check the path");
  if (std::filesystem::is_directory(path, ec))
    throw UserError("checkpoint " + path + " is a directory; give a checkpoint file such as " + path +
                    "/checkpoint.h5, or --resume auto with train.output_dir=" + path);
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw UserError("checkpoint " + path + " is not an HDF5 file (truncated, or not a checkpoint)");
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw UserError("checkpoint " + path + " cannot be opened: the HDF5 file is damaged or truncated");
  return h5::H5Id(id, H5Fclose);
}

// Model dataset names expected by `model`: name -> (shape, is an int64 counter).
std::map<std::string, std::vector<int64_t>> expected_model(ResNet& model) {
  std::map<std::string, std::vector<int64_t>> want;
  for (const auto& p : model.params().params()) want[p.name] = {p.shape.begin(), p.shape.end()};
  for (const auto& b : model.params().buffers())
    want[b.name] = b.name.ends_with(".num_batches_tracked") ? std::vector<int64_t>{}
                                                            : std::vector<int64_t>{b.shape.begin(), b.shape.end()};
  return want;
}

}  // namespace

CheckpointInfo read_checkpoint_info(const std::string& path) {
  h5::H5Quiet quiet;
  h5::H5Id file = open_checkpoint(path);
  const hid_t f = file.get();
  CheckpointInfo ck;
  ck.path = path;
  try {
    if (!h5::has_attr(f, "format") || h5::get_string_attr(f, "format") != "resnet-checkpoint")
      throw UserError("checkpoint " + path +
                      " is an HDF5 file but not a resnet-train checkpoint (no format = resnet-checkpoint "
                      "attribute); a torchvision state_dict must go through tools/import_torch.py first");
    if (!h5::has_attr(f, "complete") || h5::get_int_attr(f, "complete") != 1)
      throw UserError("checkpoint " + path + " is incomplete: its write was interrupted; use an earlier one");
    ck.format_version = h5::get_int_attr(f, "format_version");
    if (ck.format_version > kCheckpointFormatVersion || ck.format_version < 2)
      throw UserError(fmt::format("checkpoint {} has format version {}; this resnet-train ({}) reads version 2 to {}",
                                  path, ck.format_version, RN_VERSION, kCheckpointFormatVersion));
    ck.arch = h5::get_string_attr(f, "arch");
    ck.num_classes = h5::get_int_attr(f, "num_classes");
    ck.has_optimizer_state = h5::get_int_attr(f, "has_optimizer_state") == 1;
    TrainState& st = ck.state;
    st.step = h5::get_int_attr(f, "step");
    st.cursor = {h5::get_int_attr(f, "epoch"), h5::get_int_attr(f, "epoch_sample")};
    st.epoch_position = h5::get_double_attr(f, "epoch_position");
    st.epoch_size = h5::get_int_attr(f, "epoch_size");
    st.lr = h5::get_double_attr(f, "lr");
    st.base_lr = h5::get_double_attr(f, "base_lr");
    st.lr_schedule = h5::get_string_attr(f, "lr_schedule");
    st.world_size = h5::get_int_attr(f, "world_size");
    st.batch_size = h5::get_int_attr(f, "batch_size");
    st.seed = std::stoull(h5::get_string_attr(f, "seed"));
    st.config_ini = h5::get_string_attr(f, "config");
    st.program_version = h5::get_string_attr(f, "program_version");
    if (h5::has_link(f, "classes")) st.class_names = h5::read_strings(f, "classes");
    if (h5::has_link(f, "state/rank_cursors")) {
      const auto d = h5::dims_of(f, "state/rank_cursors");
      if (d.size() != 2 || d[1] != 2) throw std::runtime_error("state/rank_cursors is not [world, 2]");
      std::vector<int64_t> c(size_t(d[0] * 2));
      h5::read_i64(f, "state/rank_cursors", c.data());
      for (int64_t r = 0; r < d[0]; ++r) st.rank_cursors.push_back({c[size_t(2 * r)], c[size_t(2 * r + 1)]});
    }
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    throw UserError(fmt::format("checkpoint {} is damaged or from an incompatible writer: {}", path, e.what()));
  }
  return ck;
}

std::vector<std::string> load_model_weights(const CheckpointInfo& ck, ResNet& model, Backend& be, WeightMatch match) {
  h5::H5Quiet quiet;
  h5::H5Id file = open_checkpoint(ck.path);
  const hid_t f = file.get();
  const auto want = expected_model(model);
  std::map<std::string, std::vector<int64_t>> have;
  try {
    for (const auto& n : h5::list_datasets(f, "model")) have[n] = h5::dims_of(f, "model/" + n);
  } catch (const std::exception& e) {
    throw UserError(fmt::format("checkpoint {}: cannot list /model: {}", ck.path, e.what()));
  }
  std::vector<std::string> problems, kept_init;
  for (const auto& [name, shape] : want) {
    auto it = have.find(name);
    if (it == have.end()) {
      problems.push_back(name + " is missing");
    } else if (it->second != shape) {
      if (match == WeightMatch::kAllowNewClassifier && name.starts_with("fc."))
        kept_init.push_back(name);
      else
        problems.push_back(
            fmt::format("{} is {} in the file, {} in this model", name, shape_str(it->second), shape_str(shape)));
    }
  }
  for (const auto& [name, shape] : have)
    if (!want.count(name)) problems.push_back(name + " is in the file but not in this model");
  if (!problems.empty()) {
    std::string list;
    for (size_t i = 0; i < problems.size() && i < 6; ++i) list += "\n  " + problems[i];
    if (problems.size() > 6) list += fmt::format("\n  ... and {} more", problems.size() - 6);
    throw UserError(fmt::format("checkpoint {} ({} weights, {} classes) does not fit this model ({}, {} classes):{}",
                                ck.path, ck.arch, ck.num_classes, model.arch().name, model.num_classes(), list));
  }
  auto skip = [&](const std::string& n) { return std::find(kept_init.begin(), kept_init.end(), n) != kept_init.end(); };
  ParamStore& ps = model.params();
  std::vector<float> values(size_t(ps.flat_values().shape().numel()));
  std::vector<float> buffers(size_t(ps.flat_buffers().shape().numel()));
  be.synchronize();
  be.to_host(ps.flat_values(), values.data());  // keeps the initialisation of skipped entries
  be.to_host(ps.flat_buffers(), buffers.data());
  try {
    for (const auto& p : ps.params())
      if (!skip(p.name)) h5::read_f32(f, "model/" + p.name, values.data() + p.offset);
    for (const auto& b : ps.buffers()) {
      if (b.name.ends_with(".num_batches_tracked")) {
        int64_t count = 0;
        h5::read_i64(f, "model/" + b.name, &count);
        buffers[b.offset] = float(count);
      } else {
        h5::read_f32(f, "model/" + b.name, buffers.data() + b.offset);
      }
    }
  } catch (const std::exception& e) {
    throw UserError(fmt::format("checkpoint {} is damaged: {}", ck.path, e.what()));
  }
  be.from_host(values.data(), ps.flat_values());
  be.from_host(buffers.data(), ps.flat_buffers());
  return kept_init;
}

void load_momentum(const CheckpointInfo& ck, ParamStore& params, Tensor& velocity, Backend& be) {
  if (!ck.has_optimizer_state)
    throw UserError("checkpoint " + ck.path +
                    " holds weights only (no optimizer state), so it cannot resume a run; start a new run from it "
                    "with --init-from " +
                    ck.path);
  h5::H5Quiet quiet;
  h5::H5Id file = open_checkpoint(ck.path);
  std::vector<float> host(size_t(velocity.shape().numel()), 0.f);
  try {
    for (const auto& p : params.params()) {
      const std::string name = "optimizer/momentum/" + p.name;
      if (h5::dims_of(file.get(), name) != std::vector<int64_t>(p.shape.begin(), p.shape.end()))
        throw std::runtime_error(name + " has the wrong shape");
      h5::read_f32(file.get(), name, host.data() + p.offset);
    }
  } catch (const std::exception& e) {
    throw UserError(fmt::format("checkpoint {}: optimizer state is damaged: {}", ck.path, e.what()));
  }
  be.from_host(host.data(), velocity);
}

}  // namespace rn
