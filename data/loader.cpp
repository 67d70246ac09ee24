#include "data/loader.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <opencv2/core.hpp>

#include "data/jpeg_decoder.h"
#include "data/train_progress.h"
#include "trainer/core/error.h"

namespace rn::data {

struct Loader::Slot {
  Batch batch;
  std::vector<float> images;
  std::vector<int32_t> labels;
  std::vector<int64_t> indices;
  // The items' stored bytes (jpeg or raw) back to back, item i's at
  // [offsets[i], offsets[i + 1]): one buffer, so that it stops growing once
  // a batch's total has (per-image buffers would each grow to the largest
  // image they ever met: gigabytes over an ImageNet run).
  std::vector<uint8_t> bytes;
  std::vector<size_t> offsets;
  std::shared_ptr<void> pinned;         // images page-locked (pin_images); released before images
  int64_t remaining = 0;                // items not yet decoded (under mu_)
  bool ready = false;                   // every item done (under mu_)
};

namespace {

EpochPlanOptions with_size(EpochPlanOptions p, int64_t n) {
  p.dataset_size = n;
  return p;
}

}  // namespace

Loader::Loader(const LoaderOptions& o)
    : o_(o),
      reader_(o.dir),
      plan_(with_size(o.plan, reader_.size())),
      plan_info_(plan_.options()),
      views_(Augmenter(o.augment).views()),  // also checks the augmentation options
      floats_per_view_(3 * int64_t(o.augment.out_size) * o.augment.out_size) {
  const auto& m = reader_.manifest();
  if (o.threads < 1 || o.prefetch < 1 || o.max_bad_samples < 0)
    throw UserError(fmt::format("{}: loader threads ({}) and prefetch ({}) must be >= 1, max_bad_samples ({}) >= 0",
                                o.what, o.threads, o.prefetch, o.max_bad_samples));
  if (m.total_samples == 0)
    throw UserError(fmt::format("{} = '{}' holds no samples; convert a dataset into it", o.what, o.dir));
  if (o.num_classes > 0 && m.num_classes != o.num_classes)
    throw UserError(
        fmt::format("{} = '{}' has {} classes but model.num_classes = {}; set model.num_classes = {} "
                    "or point {} at a dataset with {} classes",
                    o.what, o.dir, m.num_classes, o.num_classes, m.num_classes, o.what, o.num_classes));
  for (int64_t i = 0; i < reader_.size(); ++i) {
    const int32_t label = reader_.label(i);
    if (label < 0 || label >= m.num_classes) {
      const auto [s, k] = reader_.locate(i);
      throw UserError(
          fmt::format("{}: {} index {} has label {}, outside [0, {}); the dataset is damaged: run "
                      "`resnet-data verify {}` and convert it again",
                      o.what, m.shards[size_t(s)].file, k, label, m.num_classes, o.dir));
    }
  }
  if (plan_.batches_per_epoch() == 0)
    throw UserError(
        fmt::format("{} = '{}' has {} samples, fewer than one global batch ({} per rank x {} ranks); lower "
                    "train.batch_size (or train.accumulate)",
                    o.what, o.dir, m.total_samples, o.plan.batch_size, o.plan.world));
  // Our workers are the parallelism; OpenCV's own pool would oversubscribe.
  cv::setNumThreads(0);
}

Loader::~Loader() { stop(); }

int64_t Loader::global_batch() const { return int64_t(plan_info_.options().batch_size) * plan_info_.options().world; }

DataCursor Loader::advance(DataCursor c) const {
  if (plan_info_.options().train) return advance_train(c, epoch_size(), global_batch());
  c.sample += plan_info_.options().batch_size;
  return c;
}

void Loader::start(DataCursor c) {
  stop();
  const int batch = plan_info_.options().batch_size;
  if (plan_info_.options().train) {
    c = normalize_train_cursor(c, epoch_size(), global_batch());
    RN_CHECK(valid_train_cursor(c, epoch_size(), global_batch()),
             fmt::format("loader cursor (epoch {}, sample {}) outside an epoch of {} samples", c.epoch, c.sample,
                         epoch_size()));
  } else {
    const int64_t share = plan_info_.share_size();
    RN_CHECK(c.epoch >= 0 && c.sample >= 0 && c.sample <= share && (c.sample % batch == 0 || c.sample == share),
             fmt::format("evaluation loader cursor (epoch {}, sample {}) outside a share of {} samples in batches "
                         "of {}",
                         c.epoch, c.sample, share, batch));
  }
  if (slots_.empty()) {
    const int ahead = std::max(1, o_.prefetch / views_);
    for (int i = 0; i <= ahead; ++i) {
      auto s = std::make_unique<Slot>();
      s->images.resize(size_t(views_) * batch * floats_per_view_);
      s->labels.resize(size_t(batch));
      s->indices.resize(size_t(batch));
      s->offsets.resize(size_t(batch) + 1);
      if (pin_) s->pinned = pin_(s->images.data(), s->images.size() * sizeof(float));
      slots_.push_back(std::move(s));
    }
    tasks_.resize(slots_.size() * size_t(batch));
  }
  for (auto& s : slots_) s->ready = false, s->remaining = 0;
  stopping_ = false;
  error_ = nullptr;
  task_head_ = task_count_ = 0;
  produced_seq_ = consumed_seq_ = 0;
  handed_ = nullptr;
  consumer_ = c;
  reader_thread_ = std::thread([this, c] { reader_loop(c); });
  for (int i = 0; i < o_.threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

void Loader::pin_images(const HostPinner& pin) {
  pin_ = pin;
  for (auto& s : slots_) s->pinned = pin_(s->images.data(), s->images.size() * sizeof(float));
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (reader_thread_.joinable()) reader_thread_.join();
  for (auto& w : workers_) w.join();
  workers_.clear();
  handed_ = nullptr;
}

void Loader::fail(std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = e;
  }
  cv_.notify_all();
}

const Batch& Loader::next() {
  const bool train = plan_info_.options().train;
  if (!train && !plan_info_.has_batch(consumer_.sample))
    throw InternalError("loader: next() after the last evaluation batch");
  Slot* s = slots_[consumed_seq_ % slots_.size()].get();
  const auto t0 = std::chrono::steady_clock::now();
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (handed_) {  // the caller is done with the previous batch: its slot is free
      handed_->ready = false;
      handed_ = nullptr;
      cv_.notify_all();
    }
    cv_.wait(lock, [&] { return s->ready || error_ || stopping_; });
    if (error_) std::rethrow_exception(error_);
    RN_CHECK(!stopping_, "loader: next() without start()");
    handed_ = s;
    ++consumed_seq_;
  }
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RN_CHECK(s->batch.at == consumer_, "loader: batches out of order");
  consumer_ = advance(consumer_);
  return s->batch;
}

void Loader::reader_loop(DataCursor c) {
  try {
    const bool train = plan_.options().train;
    std::vector<int64_t> idx(size_t(plan_.options().batch_size));
    for (;;) {
      if (!train && !plan_.has_batch(c.sample)) return;  // evaluation: one epoch
      Slot* s = slots_[produced_seq_ % slots_.size()].get();
      {
        std::unique_lock<std::mutex> lock(mu_);
        // Free when not ready and not handed out; the ring never laps the consumer.
        cv_.wait(lock, [&] {
          return stopping_ || error_ || (produced_seq_ < consumed_seq_ + slots_.size() && !s->ready && s != handed_);
        });
        if (stopping_ || error_) return;
      }
      plan_.set_epoch(c.epoch);
      const int64_t n = plan_.batch_at(c.sample, s->indices.data());
      size_t total = 0;
      for (int64_t i = 0; i < n; ++i) {
        s->offsets[size_t(i)] = total;
        total += reader_.sample_bytes(s->indices[size_t(i)]);
        s->labels[size_t(i)] = reader_.label(s->indices[size_t(i)]);
      }
      s->offsets[size_t(n)] = total;
      // A quarter more: batch totals vary little (sums of many images), so
      // the buffer settles after the first batches.
      if (s->bytes.size() < total) s->bytes.resize(total + total / 4);
      for (int64_t i = 0; i < n; ++i)
        reader_.read_bytes(s->indices[size_t(i)], s->bytes.data() + s->offsets[size_t(i)]);
      Batch& b = s->batch;
      b.at = c;
      b.n = n;
      b.views = views_;
      b.image_size = o_.augment.out_size;
      b.images = s->images.data();
      b.labels = s->labels.data();
      b.indices = s->indices.data();
      b.skipped = 0;
      b.warnings.clear();
      {
        std::lock_guard<std::mutex> lock(mu_);
        s->remaining = n;
        for (int64_t i = 0; i < n; ++i) {
          tasks_[(task_head_ + task_count_) % tasks_.size()] = Task{s, i};
          ++task_count_;
        }
        ++produced_seq_;
      }
      cv_.notify_all();
      c = advance(c);
    }
  } catch (...) {
    fail(std::current_exception());
  }
}

void Loader::worker_loop() {
  try {
    JpegDecoder dec;
    Augmenter aug(o_.augment);
    for (;;) {
      Task t;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || error_ || task_count_ > 0; });
        if (stopping_ || error_) return;
        t = tasks_[task_head_];
        task_head_ = (task_head_ + 1) % tasks_.size();
        --task_count_;
      }
      process(*t.slot, t.item, dec, aug);
      bool done;
      {
        std::lock_guard<std::mutex> lock(mu_);
        done = --t.slot->remaining == 0;
        if (done) t.slot->ready = true;
      }
      if (done) cv_.notify_all();
    }
  } catch (...) {
    fail(std::current_exception());
  }
}

void Loader::process(Slot& s, int64_t item, JpegDecoder& dec, Augmenter& aug) {
  const int64_t n = s.batch.n, index = s.indices[size_t(item)];
  const uint8_t* bytes = s.bytes.data() + s.offsets[size_t(item)];
  const size_t size = s.offsets[size_t(item) + 1] - s.offsets[size_t(item)];
  const auto out = [&](int v) { return s.images.data() + (int64_t(v) * n + item) * floats_per_view_; };
  SampleRng rng(plan_info_.options().seed, uint64_t(s.batch.at.epoch), uint64_t(index));
  const auto& m = reader_.manifest();
  CropWindow win[10];
  try {
    if (m.layout == shards::Layout::kRaw) {
      for (int v = 0; v < views_; ++v) win[v] = aug.plan(m.image_width, m.image_height, v, rng);
      for (int v = 0; v < views_; ++v) aug.render(bytes, m.image_width, m.image_height, win[v], rng, out(v));
    } else {
      const JpegSize full = dec.header(bytes, size);
      int min_w = full.width, min_h = full.height;
      for (int v = 0; v < views_; ++v) {
        win[v] = aug.plan(full.width, full.height, v, rng);
        min_w = std::min(min_w, win[v].w);
        min_h = std::min(min_h, win[v].h);
      }
      const JpegScale scale = dec.scale_for(min_w, min_h, o_.augment.out_size);
      dec.decode(bytes, size, scale);
      const JpegSize got = dec.size();
      for (int v = 0; v < views_; ++v) {
        const CropWindow w =
            scale.num == scale.denom ? win[v] : scale_window(win[v], scale.num, scale.denom, got.width, got.height);
        aug.render(dec.rgb(), got.width, got.height, w, rng, out(v));
      }
    }
  } catch (const JpegError& e) {
    for (int v = 0; v < views_; ++v) std::fill_n(out(v), floats_per_view_, 0.f);
    s.labels[size_t(item)] = -1;
    const auto [shard, k] = reader_.locate(index);
    const int64_t count = ++bad_;
    std::string msg = fmt::format("{}: skipped the corrupt image at {} index {} (sample {}): {} [{} so far]", o_.what,
                                  m.shards[size_t(shard)].file, k, index, e.what(), count);
    if (count > o_.max_bad_samples)
      throw UserError(
          fmt::format("{}; that is more than data.max_bad_samples = {}: check the dataset with "
                      "`resnet-data verify {}` or raise the limit",
                      msg, o_.max_bad_samples, o_.dir));
    std::lock_guard<std::mutex> lock(mu_);
    ++s.batch.skipped;
    s.batch.warnings.push_back(std::move(msg));
  }
}

}  // namespace rn::data
