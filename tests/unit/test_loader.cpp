// The data loader (data/loader.h) and its epoch plan (data/epoch_plan.h):
// distributed coverage for 1..5 ranks on sizes that do not divide, epoch
// reshuffling, determinism across thread counts, exact resume from a
// cursor (also with another world size), scaled JPEG decoding, corrupt
// images and bad datasets.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "data/epoch_plan.h"
#include "data/jpeg_decoder.h"
#include "data/loader.h"
#include "data/shard_format.h"
#include "data/synthetic_stream.h"
#include "dataset_test_util.h"
#include "process_util.h"

namespace {

using namespace rn::data;
using namespace rn::testing_util;

// Every batch of one epoch of `plan` (set to `epoch`), as index lists.
std::vector<std::vector<int64_t>> epoch_batches(EpochPlan& plan, int64_t epoch) {
  plan.set_epoch(epoch);
  std::vector<std::vector<int64_t>> out;
  const auto& o = plan.options();
  std::vector<int64_t> idx(size_t(o.batch_size));
  // Training cursors step by the global batch, evaluation ones by the batch.
  const int64_t step = o.train ? int64_t(o.batch_size) * o.world : o.batch_size;
  for (int64_t sample = 0; plan.has_batch(sample); sample += step) {
    const int64_t n = plan.batch_at(sample, idx.data());
    out.emplace_back(idx.begin(), idx.begin() + n);
  }
  EXPECT_EQ(int64_t(out.size()), plan.batches_per_epoch());
  return out;
}

TEST(EpochPlan, EvaluationCoversEverySampleExactlyOnceForOneToFiveRanks) {
  for (int64_t size : {1, 7, 37, 101}) {
    for (int world = 1; world <= 5; ++world) {
      std::vector<int> seen(size_t(size), 0);
      for (int r = 0; r < world; ++r) {
        EpochPlan p({size, 0, 4, r, world, /*train=*/false, 3});
        for (const auto& b : epoch_batches(p, 0)) {
          EXPECT_LE(b.size(), 4u);
          for (int64_t i : b) ++seen[size_t(i)];
        }
      }
      for (int64_t i = 0; i < size; ++i)
        ASSERT_EQ(seen[size_t(i)], 1) << "sample " << i << ", size " << size << ", " << world << " ranks";
    }
  }
}

TEST(EpochPlan, EvaluationLimitUsesTheFirstSamples) {
  std::multiset<int64_t> all;
  for (int r = 0; r < 3; ++r) {
    EpochPlan p({100, 10, 4, r, 3, false, 1});
    EXPECT_EQ(p.samples_per_epoch(), 10);
    for (const auto& b : epoch_batches(p, 0)) all.insert(b.begin(), b.end());
  }
  EXPECT_EQ(all, std::multiset<int64_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(EpochPlan, TrainingRanksAreDisjointFullBatchesAndReshuffledPerEpoch) {
  for (int64_t size : {37, 101, 64}) {
    for (int world = 1; world <= 5; ++world) {
      const int batch = 3;
      const int64_t steps = size / (batch * world);
      std::vector<std::vector<std::vector<int64_t>>> by_epoch(2);
      for (int64_t e = 0; e < 2; ++e) {
        std::vector<int> seen(size_t(size), 0);
        std::vector<int64_t> order;  // the epoch's samples in step, then rank order
        std::vector<std::vector<std::vector<int64_t>>> per_rank;
        for (int r = 0; r < world; ++r) {
          EpochPlan p({size, 0, batch, r, world, /*train=*/true, 11});
          ASSERT_EQ(p.batches_per_epoch(), steps);  // the same on every rank
          per_rank.push_back(epoch_batches(p, e));
        }
        for (int64_t s = 0; s < steps; ++s)
          for (int r = 0; r < world; ++r) {
            ASSERT_EQ(per_rank[size_t(r)][size_t(s)].size(), size_t(batch));
            for (int64_t i : per_rank[size_t(r)][size_t(s)]) {
              ++seen[size_t(i)];
              order.push_back(i);
            }
          }
        EXPECT_EQ(int64_t(order.size()), steps * batch * world);
        for (int64_t i = 0; i < size; ++i) ASSERT_LE(seen[size_t(i)], 1) << "sample " << i << " twice in an epoch";
        by_epoch[size_t(e)].push_back(order);
      }
      if (steps * batch * world > 4) {
        EXPECT_NE(by_epoch[0][0], by_epoch[1][0]) << "epochs must be reshuffled";
      }
    }
  }
}

TEST(EpochPlan, OrderDependsOnlyOnSeedAndEpoch) {
  std::vector<int64_t> a, b, c;
  shuffled_order(1000, 5, 2, a);
  shuffled_order(1000, 5, 2, b);
  shuffled_order(1000, 6, 2, c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[size_t(i)], i);
}

TEST(EpochPlan, ContiguousShareSizesDifferByAtMostOne) {
  int64_t next = 0;
  for (int r = 0; r < 4; ++r) {
    const auto [b, e] = contiguous_share(10, r, 4);
    EXPECT_EQ(b, next);
    EXPECT_TRUE(e - b == 2 || e - b == 3);
    next = e;
  }
  EXPECT_EQ(next, 10);
}

TEST(JpegDecoder, PicksTheLargestReductionThatKeepsTheCropAtLeastTheOutput) {
  rn::JpegDecoder d;
  const rn::JpegScale s = d.scale_for(1000, 800, 224);  // 3/8 of 800 = 300 >= 224, 1/4 = 200 is too small
  EXPECT_EQ(s.num * 8, 3 * s.denom);
  const rn::JpegScale none = d.scale_for(300, 250, 224);
  EXPECT_EQ(none.num, none.denom);
  // Decoding at 1/2 gives ceil(w/2) x ceil(h/2) pixels close to the full decode's 2x2 means.
  const auto img = test_image(65, 40, 1);
  const auto jpeg = rn::encode_jpeg(img.data(), 65, 40, 95);
  d.decode(jpeg.data(), jpeg.size(), {1, 2});
  EXPECT_EQ(d.size().width, 33);
  EXPECT_EQ(d.size().height, 20);
}

// A JPEG dataset of `n` samples with labels (i * 7) % classes.
LoaderOptions options_for(const std::string& dir, int batch, int rank, int world, bool train) {
  LoaderOptions o;
  o.dir = dir;
  o.what = "test data";
  o.plan.batch_size = batch;
  o.plan.rank = rank;
  o.plan.world = world;
  o.plan.train = train;
  o.plan.seed = 9;
  o.augment.kind = train ? AugmentKind::kInception : AugmentKind::kCenter;
  o.augment.out_size = 8;
  o.augment.resize_size = 9;
  o.threads = 2;
  o.prefetch = 2;
  return o;
}

TEST(Loader, RanksTogetherSeeEverySampleOnceWithItsLabel) {
  const std::string dir = fresh_dir("rn_loader_cover");
  const Written w = write_dataset(dir, Layout::kJpeg, 23, 5, 3, 20, 14);
  for (int world = 1; world <= 5; ++world) {
    std::map<int64_t, int> seen;
    for (int r = 0; r < world; ++r) {
      Loader l(options_for(dir, 4, r, world, false));
      l.start({0, 0});
      for (int64_t b = 0; b < l.batches_per_epoch(); ++b) {
        const Batch& batch = l.next();
        EXPECT_EQ(batch.at, (DataCursor{0, b * 4}));
        for (int64_t i = 0; i < batch.n; ++i) {
          ++seen[batch.indices[i]];
          EXPECT_EQ(batch.labels[i], w.labels[size_t(batch.indices[i])]);
        }
      }
      EXPECT_ANY_THROW(l.next());  // evaluation ends after one epoch
    }
    ASSERT_EQ(seen.size(), 23u) << world << " ranks";
    for (const auto& [i, count] : seen) EXPECT_EQ(count, 1) << "sample " << i;
  }
}

// The floats of `batches` batches from `c`, with `threads` workers.
std::vector<float> run_loader(const std::string& dir, int threads, int prefetch, DataCursor c, int batches,
                              std::vector<int64_t>* indices = nullptr) {
  LoaderOptions o = options_for(dir, 3, 1, 2, true);
  o.threads = threads;
  o.prefetch = prefetch;
  Loader l(o);
  l.start(c);
  std::vector<float> out;
  for (int b = 0; b < batches; ++b) {
    const Batch& batch = l.next();
    out.insert(out.end(), batch.images, batch.images + batch.n * 3 * 8 * 8);
    if (indices) indices->insert(indices->end(), batch.indices, batch.indices + batch.n);
  }
  return out;
}

// A HostPinner that records what it pins and when each handle is released.
struct PinLog {
  struct Range {
    const char* begin;
    size_t bytes;
    bool released = false;
  };
  std::vector<Range> ranges;
  HostPinner pinner() {
    return [this](void* p, size_t bytes) {
      const size_t i = ranges.size();
      ranges.push_back({static_cast<const char*>(p), bytes});
      return std::shared_ptr<void>(p, [this, i](void*) { ranges[i].released = true; });
    };
  }
  // The pinned, unreleased range that holds [p, p + bytes), or -1.
  int find(const void* p, size_t bytes) const {
    const auto* c = static_cast<const char*>(p);
    for (size_t i = 0; i < ranges.size(); ++i)
      if (!ranges[i].released && c >= ranges[i].begin && c + bytes <= ranges[i].begin + ranges[i].bytes) return int(i);
    return -1;
  }
};

TEST(Loader, PinsEverySlotOnceAndEveryBatchLiesInPinnedMemoryUntilDestroyed) {
  const std::string dir = fresh_dir("rn_loader_pin");
  write_dataset(dir, Layout::kJpeg, 20, 5, 3, 20, 14);
  PinLog log;
  std::set<int> used;
  {
    LoaderOptions o = options_for(dir, 3, 0, 1, true);
    o.prefetch = 3;
    Loader l(o);
    l.pin_images(log.pinner());
    EXPECT_TRUE(log.ranges.empty());  // buffers are made by start()
    l.start({0, 0});
    ASSERT_EQ(log.ranges.size(), 4u);  // 1 + prefetch slots
    for (const auto& r : log.ranges) EXPECT_EQ(r.bytes, 3u * 3 * 8 * 8 * sizeof(float));
    for (int b = 0; b < 10; ++b) {
      const Batch& batch = l.next();
      const int at = log.find(batch.images, size_t(batch.n) * 3 * 8 * 8 * sizeof(float));
      EXPECT_GE(at, 0) << "batch " << b << " is not in pinned memory";
      used.insert(at);
    }
    l.start({1, 3});  // restarting reuses the pinned slots
    l.next();
    EXPECT_EQ(log.ranges.size(), 4u);
    for (const auto& r : log.ranges) EXPECT_FALSE(r.released);
  }
  EXPECT_EQ(used.size(), 4u);  // the batches rotate through every slot
  for (const auto& r : log.ranges) EXPECT_TRUE(r.released);
  // Pinning after start() pins the slots that exist, once.
  PinLog late;
  {
    Loader l(options_for(dir, 3, 0, 1, true));
    l.start({0, 0});
    l.pin_images(late.pinner());
    EXPECT_EQ(late.ranges.size(), 3u);  // 1 + prefetch 2
    const Batch& batch = l.next();
    EXPECT_GE(late.find(batch.images, size_t(batch.n) * 3 * 8 * 8 * sizeof(float)), 0);
  }
  for (const auto& r : late.ranges) EXPECT_TRUE(r.released);
}

TEST(SyntheticStream, PinsItsOneBatchBufferUntilDestroyed) {
  PinLog log;
  {
    SyntheticStreamOptions o;
    o.source = rn::SyntheticOptions{10, 16, 0.5, 3};
    o.batch_size = 5;
    o.samples = 40;
    SyntheticStream s(o);
    s.pin_images(log.pinner());
    ASSERT_EQ(log.ranges.size(), 1u);
    EXPECT_EQ(log.ranges[0].bytes, 5u * 3 * 16 * 16 * sizeof(float));
    s.start({0, 0});
    for (int b = 0; b < 3; ++b) EXPECT_EQ(log.find(s.next().images, log.ranges[0].bytes), 0);
    EXPECT_FALSE(log.ranges[0].released);
  }
  EXPECT_TRUE(log.ranges[0].released);
}

TEST(Loader, BatchesDoNotDependOnThreadsOrPrefetchAndResumeExactly) {
  const std::string dir = fresh_dir("rn_loader_determinism");
  write_dataset(dir, Layout::kJpeg, 20, 6, 3, 24, 18);
  // 20 samples, batch 3 x 2 ranks: global batches at samples 0, 6, 12 of
  // each epoch (18 + 6 > 20); 7 batches cross two epoch ends.
  std::vector<int64_t> idx1, idx3;
  const auto a = run_loader(dir, 1, 1, {0, 0}, 7, &idx1);
  const auto b = run_loader(dir, 3, 4, {0, 0}, 7, &idx3);
  EXPECT_EQ(idx1, idx3);
  EXPECT_EQ(a, b);
  // Resuming at epoch 1, sample 12 (its third batch) gives exactly batches 5
  // and 6 of the uninterrupted run.
  std::vector<int64_t> resumed_idx;
  const auto resumed = run_loader(dir, 2, 2, {1, 12}, 2, &resumed_idx);
  const size_t per_batch = 3 * 3 * 8 * 8;
  EXPECT_EQ(resumed, std::vector<float>(a.begin() + 5 * per_batch, a.end()));
  EXPECT_EQ(resumed_idx, std::vector<int64_t>(idx1.begin() + 5 * 3, idx1.end()));
  // A cursor with fewer than a global batch left in its epoch is the start of the next.
  const auto next_epoch = run_loader(dir, 2, 2, {1, 0}, 1);
  EXPECT_EQ(run_loader(dir, 2, 2, {0, 18}, 1), next_epoch);
  EXPECT_EQ(run_loader(dir, 2, 2, {0, 15}, 1), next_epoch);
  EXPECT_EQ(run_loader(dir, 2, 2, {0, 20}, 1), next_epoch);
  // Epochs differ (reshuffled, new augmentation).
  EXPECT_NE(std::vector<float>(a.begin(), a.begin() + per_batch),
            std::vector<float>(a.begin() + 3 * per_batch, a.begin() + 4 * per_batch));
}

TEST(Loader, CursorFollowsTheBatchesHandedOut) {
  const std::string dir = fresh_dir("rn_loader_cursor");
  write_dataset(dir, Layout::kJpeg, 12, 12);
  Loader l(options_for(dir, 2, 0, 2, true));  // global batch 4: 3 batches per epoch
  EXPECT_EQ(l.epoch_size(), 12);
  l.start({0, 4});
  EXPECT_EQ(l.cursor(), (DataCursor{0, 4}));
  l.next();
  EXPECT_EQ(l.cursor(), (DataCursor{0, 8}));
  l.next();
  EXPECT_EQ(l.cursor(), (DataCursor{1, 0}));
  EXPECT_EQ(l.next().at, (DataCursor{1, 0}));
  // Any position with a full global batch left, e.g. one saved at another world size.
  l.start({2, 3});
  EXPECT_EQ(l.cursor(), (DataCursor{2, 3}));
  EXPECT_EQ(l.next().at, (DataCursor{2, 3}));
  EXPECT_EQ(l.cursor(), (DataCursor{2, 7}));
  l.next();
  EXPECT_EQ(l.cursor(), (DataCursor{3, 0}));  // 11 + 4 > 12
  l.start({2, 10});                           // fewer than 4 left: the next epoch
  EXPECT_EQ(l.cursor(), (DataCursor{3, 0}));
  EXPECT_THROW(l.start({0, 13}), rn::InternalError);
  EXPECT_THROW(l.start({0, -1}), rn::InternalError);
  EXPECT_THROW(l.start({-1, 0}), rn::InternalError);

  Loader e(options_for(dir, 4, 1, 2, false));  // rank 1's share: samples [6, 12)
  e.start({0, 4});
  const Batch& last = e.next();
  EXPECT_EQ(last.at, (DataCursor{0, 4}));
  EXPECT_EQ(last.n, 2);
  EXPECT_EQ(last.indices[0], 10);
  EXPECT_EQ(e.cursor(), (DataCursor{0, 8}));
  EXPECT_ANY_THROW(e.next());
  EXPECT_THROW(e.start({0, 2}), rn::InternalError);  // not a batch boundary
  EXPECT_THROW(e.start({0, 8}), rn::InternalError);  // past the share
}

// `world` loaders (ranks 0..world-1, batch 2) from `c` until `steps` steps
// or the end of c's epoch; appends every rank's indices to `seen` and keeps
// each sample's pixels in `pixels`. Returns the cursor after them.
DataCursor run_ranks(const std::string& dir, int world, DataCursor c, int steps, std::vector<int64_t>& seen,
                     std::map<int64_t, std::vector<float>>& pixels) {
  std::vector<std::unique_ptr<Loader>> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.push_back(std::make_unique<Loader>(options_for(dir, 2, r, world, true)));
    ranks.back()->start(c);
  }
  const int64_t epoch = c.epoch, floats = 3 * 8 * 8;
  c = ranks[0]->cursor();
  for (int s = 0; s < steps && c.epoch == epoch; ++s) {
    for (auto& l : ranks) {
      EXPECT_EQ(l->cursor(), c);  // the same on every rank
      const Batch& b = l->next();
      EXPECT_EQ(b.at, c);
      for (int64_t i = 0; i < b.n; ++i) {
        seen.push_back(b.indices[i]);
        pixels[b.indices[i]].assign(b.images + i * floats, b.images + (i + 1) * floats);
      }
    }
    c = ranks[0]->cursor();
  }
  return c;
}

TEST(Loader, ResumingWithAnotherWorldSizeRepeatsNoSampleInTheEpoch) {
  const std::string dir = fresh_dir("rn_loader_world_change");
  write_dataset(dir, Layout::kJpeg, 41, 10);
  for (const int64_t epoch : {0, 1}) {
    SCOPED_TRACE(testing::Message() << "epoch " << epoch);
    // 2 ranks x 2 (G = 4) for 3 steps, then 3 ranks x 2 (G = 6) from the
    // saved cursor: 12, 18, 24, 30, then 36 + 6 > 41 ends the epoch.
    std::vector<int64_t> seen;
    std::map<int64_t, std::vector<float>> pixels;
    const DataCursor saved = run_ranks(dir, 2, {epoch, 0}, 3, seen, pixels);
    EXPECT_EQ(saved, (DataCursor{epoch, 12}));
    const DataCursor end = run_ranks(dir, 3, saved, 100, seen, pixels);
    EXPECT_EQ(end, (DataCursor{epoch + 1, 0}));
    EXPECT_EQ(seen.size(), 36u);
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), seen.size()) << "a sample repeated";
    // What is left is the last 5 positions of the epoch's order.
    std::vector<int64_t> order;
    shuffled_order(41, 9, epoch, order);
    EXPECT_EQ(seen, std::vector<int64_t>(order.begin(), order.begin() + 36));
    // Each sample's pixels depend only on (seed, epoch, index): the same as
    // in an uninterrupted one-rank run.
    std::vector<int64_t> one_rank;
    std::map<int64_t, std::vector<float>> reference;
    LoaderOptions o = options_for(dir, 1, 0, 1, true);
    Loader l(o);
    l.start({epoch, 0});
    while (l.cursor().epoch == epoch) {
      const Batch& b = l.next();
      reference[b.indices[0]].assign(b.images, b.images + 3 * 8 * 8);
    }
    for (const auto& [index, px] : pixels) EXPECT_EQ(px, reference.at(index)) << "sample " << index;
  }
}

TEST(Loader, RawLayoutWithCifarAugmentationAndTenCropViews) {
  const std::string dir = fresh_dir("rn_loader_raw");
  write_dataset(dir, Layout::kRaw, 9, 4, 3, 8, 8);
  LoaderOptions o = options_for(dir, 4, 0, 1, true);
  o.augment.kind = AugmentKind::kCifar;
  o.augment.pad = 2;
  Loader train(o);
  train.start({0, 0});
  const Batch& b = train.next();
  EXPECT_EQ(b.n, 4);
  EXPECT_EQ(b.views, 1);

  o = options_for(dir, 4, 0, 1, false);
  o.augment.kind = AugmentKind::kTenCrop;
  o.augment.out_size = 6;
  o.augment.resize_size = 8;
  Loader ten(o);
  EXPECT_EQ(ten.views(), 10);
  ten.start({0, 0});
  ten.next();
  ten.next();
  const Batch& last = ten.next();  // 9 = 4 + 4 + 1
  EXPECT_EQ(last.n, 1);
  // View 5 is view 0 mirrored: same pixels, columns reversed.
  const float* v0 = last.view(0);
  const float* v5 = last.view(5);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 6; ++x) ASSERT_EQ(v0[(c * 6 + y) * 6 + x], v5[(c * 6 + y) * 6 + (5 - x)]);
}

TEST(Loader, CorruptImageIsSkippedWithAWarningNamingShardAndIndex) {
  const std::string dir = fresh_dir("rn_loader_corrupt");
  const Written w = write_dataset(dir, Layout::kJpeg, 6, 3);
  corrupt_jpeg_in_shard(dir, 1, w.data[4]);  // shard 1, index 1
  Loader l(options_for(dir, 6, 0, 1, false));
  l.start({0, 0});
  const Batch& b = l.next();
  EXPECT_EQ(b.skipped, 1);
  EXPECT_EQ(b.labels[4], -1);
  for (int i = 0; i < 6; ++i) {
    if (i != 4) {
      EXPECT_EQ(b.labels[i], w.labels[size_t(i)]);
    }
  }
  ASSERT_EQ(b.warnings.size(), 1u);
  EXPECT_NE(b.warnings[0].find("shard-00001.h5 index 1"), std::string::npos) << b.warnings[0];
  EXPECT_NE(b.warnings[0].find("sample 4"), std::string::npos) << b.warnings[0];
  EXPECT_EQ(l.bad_samples(), 1);

  LoaderOptions strict = options_for(dir, 6, 0, 1, false);
  strict.max_bad_samples = 0;
  Loader s(strict);
  s.start({0, 0});
  expect_user_error([&] { s.next(); }, {"shard-00001.h5 index 1", "max_bad_samples = 0", "resnet-data verify"});
}

TEST(Loader, BadDatasetsStopBeforeTrainingWithAClearMessage) {
  expect_user_error([&] { Loader l(options_for("/nonexistent/shards", 2, 0, 1, true)); }, {"/nonexistent/shards"});

  const std::string empty = fresh_dir("rn_loader_empty");
  write_dataset(empty, Layout::kJpeg, 1, 5, 3);
  {  // the writer refuses to write an empty dataset: empty a manifest by hand
    const auto path = std::filesystem::path(empty) / rn::shards::kManifestName;
    auto m = nlohmann::json::parse(std::ifstream(path));
    m["total_samples"] = 0;
    m["shards"] = nlohmann::json::array();
    std::ofstream(path) << m.dump();
  }
  expect_user_error([&] { Loader l(options_for(empty, 2, 0, 1, true)); }, {empty, "holds no samples"});

  const std::string dir = fresh_dir("rn_loader_bad");
  write_dataset(dir, Layout::kJpeg, 5, 5, 3);
  LoaderOptions o = options_for(dir, 4, 0, 2, true);  // one global batch is 8 > 5 samples
  expect_user_error([&] { Loader l(o); }, {"5 samples", "fewer than one global batch", "train.batch_size"});
  o = options_for(dir, 1, 0, 1, true);
  o.num_classes = 10;
  expect_user_error([&] { Loader l(o); }, {"3 classes", "model.num_classes = 10"});

  edit_shard(shard_path(dir, 0), [](hid_t f) {
    const hid_t set = H5Dopen2(f, rn::shards::kLabels, H5P_DEFAULT);
    const int32_t bad[5] = {0, 1, 7, 0, 1};
    H5Dwrite(set, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, bad);
    H5Dclose(set);
  });
  expect_user_error([&] { Loader l(options_for(dir, 1, 0, 1, true)); },
                    {"shard-00000.h5 index 2", "label 7", "outside [0, 3)"});
}

}  // namespace
