#include "trainer/train/data_streams.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "data/loader.h"
#include "data/synthetic_stream.h"
#include "trainer/train/startup.h"

namespace rn {

namespace {

// A loader keeps every shard open (ImageNet at the default shard size is
// about 1250 files per split), beyond the usual soft limit of 1024 open
// files: raise the soft limit to the hard one, as a user would with ulimit.
void raise_open_file_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

std::unique_ptr<data::Loader> make_loader(const Config& cfg, const std::string& key, const std::string& dir, bool train,
                                          int rank, int world, int local_size) {
  const DataConfig& d = cfg.data;
  data::LoaderOptions o;
  o.dir = dir;
  o.what = key;
  o.plan.batch_size = train ? train_batch_per_rank(cfg) : cfg.train.batch_size;
  o.plan.rank = rank;
  o.plan.world = world;
  o.plan.train = train;
  o.plan.seed = cfg.train.seed;
  o.plan.limit = train || d.val_samples < 0 ? 0 : d.val_samples;
  o.augment = augment_options(d, train ? d.train_augment : d.val_augment);
  o.num_classes = cfg.model.num_classes;
  o.threads = d.loader_threads > 0 ? d.loader_threads : cores_per_rank(local_size);
  o.prefetch = d.prefetch;
  o.max_bad_samples = d.max_bad_samples;
  return std::make_unique<data::Loader>(o);
}

std::string describe(const data::Loader& l, const std::string& key, const std::string& dir, const std::string& aug,
                     int threads) {
  const auto& m = l.manifest();
  return fmt::format("{} = {}: {} images, {} classes, {} shard(s); {} per epoch, augmentation {}, {} loader thread(s)",
                     key, dir, m.total_samples, m.num_classes, m.shards.size(), l.samples_per_epoch(), aug, threads);
}

}  // namespace

data::AugmentOptions augment_options(const DataConfig& d, const std::string& kind) {
  data::AugmentOptions a;
  a.kind = data::parse_augment_kind(kind, "data augmentation");
  a.out_size = d.image_size;
  a.scale_min = d.scale_min;
  a.scale_max = d.scale_max;
  a.area_min = d.area_min;
  a.resize_size = d.val_resize > 0 ? d.val_resize : int(std::lround(d.image_size / 0.875));
  a.pad = d.cifar_pad;
  a.flip = d.flip;
  a.lighting_std = d.lighting;
  for (int c = 0; c < 3; ++c) {
    a.mean[size_t(c)] = float(d.mean[size_t(c)]);
    a.stddev[size_t(c)] = float(d.std[size_t(c)]);
  }
  return a;
}

int train_batch_per_rank(const Config& cfg) { return cfg.train.batch_size * cfg.train.accumulate; }

DataStreams make_data_streams(const Config& cfg, int rank, int world, int local_size) {
  DataStreams s;
  const DataConfig& d = cfg.data;
  if (d.source == "synthetic") {
    data::SyntheticStreamOptions o;
    o.source = SyntheticOptions{cfg.model.num_classes, d.image_size, d.synthetic_noise, cfg.train.seed};
    o.batch_size = train_batch_per_rank(cfg);
    o.rank = rank;
    o.world = world;
    o.samples = d.synthetic_samples;
    s.train = std::make_unique<data::SyntheticStream>(o);
    s.description = fmt::format("data: synthetic, {} images per epoch", s.train->samples_per_epoch());
    if (d.val_samples > 0) {
      o.train = false;
      o.batch_size = cfg.train.batch_size;
      o.samples = d.val_samples;
      s.val = std::make_unique<data::SyntheticStream>(o);
      s.description += fmt::format(", {} validation images", d.val_samples);
    }
    return s;
  }
  raise_open_file_limit();
  auto train = make_loader(cfg, "data.train", d.train, true, rank, world, local_size);
  s.description = "data: " + describe(*train, "data.train", d.train, d.train_augment, train->threads());
  s.class_names = train->manifest().class_names;
  s.train = std::move(train);
  if (!d.val.empty() && d.val_samples != 0) {
    auto val = make_loader(cfg, "data.val", d.val, false, rank, world, local_size);
    s.description += "\ndata: " + describe(*val, "data.val", d.val, d.val_augment, val->threads());
    s.val = std::move(val);
  }
  return s;
}

void pin_images(DataStreams& s, Backend& be) {
  const data::HostPinner pin = [&be](void* p, size_t bytes) { return be.pin_host_memory(p, bytes); };
  if (s.train) s.train->pin_images(pin);
  if (s.val) s.val->pin_images(pin);
}

}  // namespace rn
