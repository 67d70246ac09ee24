#include "trainer/train/trainer.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <thread>

#include "comm/allreduce.h"
#include "data/train_progress.h"
#include "trainer/checkpoint/checkpoint_dir.h"
#include "trainer/checkpoint/checkpoint_reader.h"
#include "trainer/core/error.h"
#include "trainer/model/resnet.h"
#include "trainer/nn/softmax_cross_entropy.h"
#include "trainer/optim/loss_scaler.h"
#include "trainer/optim/lr_schedule.h"
#include "trainer/optim/sgd.h"
#include "trainer/train/checkpointer.h"
#include "trainer/train/data_parallel.h"
#include "trainer/train/data_streams.h"
#include "trainer/train/evaluator.h"
#include "trainer/train/grad_accumulator.h"
#include "trainer/train/metrics_writer.h"
#include "trainer/train/model_setup.h"
#include "trainer/train/run_log.h"
#include "trainer/train/run_start.h"
#include "trainer/train/startup.h"
#include "trainer/train/step_trace.h"

namespace rn {
namespace {

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

// SIGINT, SIGTERM and SIGUSR1 (Slurm's warning ahead of the time limit,
// `--signal=B:USR1@300`) finish the current step, save a checkpoint and stop.
// Installed when the run starts, so a signal during start-up is not fatal.
struct StopSignals {
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGUSR1};
  StopSignals() {
    g_stop_signal = 0;
    for (int i = 0; i < 3; ++i) prev_[i] = std::signal(kSignals[i], on_stop_signal);
  }
  ~StopSignals() {
    for (int i = 0; i < 3; ++i) std::signal(kSignals[i], prev_[i]);
  }
  void (*prev_[3])(int);
};

std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  return s >= 3600 ? fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60) : fmt::format("{}m{:02}s", s / 60, s % 60);
}

// Test-only fault injection: RN_TEST_FAULT="RANK:STEP:KIND" makes that rank
// fail at step STEP (1-based): "throw" when the step starts, "backward"
// after backward while its gradient buckets are in flight, "hang" stops
// responding. The distributed tests use it to check that a failing or hung
// rank takes the job down with a clear message instead of a hang.
struct FaultInjection {
  enum class Where { kStart, kBackward };
  int rank = -1;
  int64_t step = -1;
  std::string kind;
  FaultInjection() {
    const char* e = std::getenv("RN_TEST_FAULT");
    if (!e) return;
    char k[16] = {0};
    long long st = 0;
    if (std::sscanf(e, "%d:%lld:%15s", &rank, &st, k) != 3)
      throw UserError("RN_TEST_FAULT must be RANK:STEP:throw|backward|hang|ckptkill");
    step = st;
    kind = k;
  }
  void at(Where where, int my_rank, int64_t s) const {
    if (my_rank != rank || s != step) return;
    if (kind == "hang" && where == Where::kStart)
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    if ((kind == "throw" && where == Where::kStart) || (kind == "backward" && where == Where::kBackward))
      throw InternalError(fmt::format("injected test fault on rank {} at step {}", my_rank, s));
  }
  // The checkpoint writer's progress callback for step s.
  std::function<void(int, int)> checkpoint_hook(int my_rank, int64_t s) const {
    if (kind != "ckptkill" || my_rank != rank || s != step) return {};
    return [](int written, int total) {
      if (written == total / 2) std::raise(SIGKILL);
    };
  }
};

int64_t first_step_if_resumed(const RunStart& s) { return s.resume ? s.resume->state.step : -1; }

// RN_SAMPLE_LOG=PREFIX: every rank appends "epoch index" for each training
// sample it uses to PREFIX.rank<R> (auditing the data order; the resume
// tests check that no sample repeats within an epoch).
class SampleLog {
 public:
  explicit SampleLog(int rank) {
    if (const char* p = std::getenv("RN_SAMPLE_LOG"))
      out_.open(std::string(p) + ".rank" + std::to_string(rank), std::ios::app);
  }
  void add(const data::Batch& b) {
    if (!out_.is_open()) return;
    for (int64_t i = 0; i < b.n; ++i) out_ << b.at.epoch << ' ' << b.indices[i] << '\n';
    out_.flush();
  }

 private:
  std::ofstream out_;
};

}  // namespace

void print_summary(const Config& cfg) {
  const ModelChoice m = resolve_model(cfg.model);
  auto be = make_cpu_backend(cfg.train.threads);
  ResNet net(*be, m.arch, cfg.model.num_classes, m.shortcut);
  const int64_t size = cfg.data.image_size;
  fmt::print("{} ({} classes, {}x{} input, shortcut {})\n", m.arch.name, cfg.model.num_classes, size, size,
             m.shortcut == ShortcutType::kProjection    ? "B"
             : m.shortcut == ShortcutType::kPadIdentity ? "A"
                                                        : "none");
  fmt::print("{:<12} {:<20} {:<18} {:>12} {:>16}\n", "layer", "kind", "output", "params", "mult-adds");
  int64_t params = 0, macs = 0;
  for (const auto& r : net.summary(size)) {
    const auto& o = r.output;
    std::string shape = o.rank() == 4 ? fmt::format("{}x{}x{}", o[1], o[2], o[3]) : fmt::format("{}", o[1]);
    fmt::print("{:<12} {:<20} {:<18} {:>12L} {:>16L}\n", r.name, r.kind, shape, r.params, r.macs);
    params += r.params;
    macs += r.macs;
  }
  fmt::print("total parameters: {} ({:.2f}M)\n", params, params / 1e6);
  fmt::print("multiply-adds per image: {} ({:.3f}G)\n", macs, macs / 1e9);
}

TrainResult run_training(const Config& cfg, comm::Communicator* world, RankPlacement where,
                         const StepObserver& after_step) {
  const int local_size = where.local_size;
  const ModelChoice m = resolve_model(cfg.model);
  const auto& t = cfg.train;
  const int rank = world ? world->rank() : 0;
  const int world_size = world ? world->size() : 1;
  const bool lead = rank == 0;  // only rank 0 prints and writes files
  namespace fs = std::filesystem;
  // The backend (and with cuda this rank's GPU) comes first: a rank that
  // cannot have it fails here, before anything is read or written, and
  // every rank says why (an agreed start-up error).
  std::unique_ptr<Backend> be;
  DeviceChoice device;
  agree_on_startup(world, [&] { be = make_rank_backend(cfg, where, &device); });
  std::optional<RunLog> log;
  std::optional<MetricsWriter> metrics;
  if (lead) {
    std::error_code ec;
    fs::create_directories(t.output_dir, ec);
    if (ec) throw UserError("cannot create train.output_dir = '" + t.output_dir + "': " + ec.message());
    log.emplace((fs::path(t.output_dir) / "train.log").string());
    metrics.emplace((fs::path(t.output_dir) / "metrics.jsonl").string());
  }
  auto say = [&](const std::string& s) {
    if (log) log->line(s);
  };
  const FaultInjection fault;
  StopSignals signals;

  ResNet model(*be, m.arch, cfg.model.num_classes, m.shortcut);
  // Activations and their gradients in one pool: backward's gradients reuse
  // the storage of the activations it has finished with.
  model.set_output_pool(&model.grad_pool());
  model.initialize(t.seed, cfg.model.zero_init_residual);
  if (cfg.model.frozen_bn) model.set_frozen_bn(true);
  Sgd opt(*be, model.params(),
          SgdOptions{float(cfg.optim.momentum), cfg.optim.nesterov, float(cfg.optim.weight_decay),
                     cfg.optim.no_decay_bn_bias});
  // A step trains on micro_batches passes of batch_size images per rank
  // (gradient accumulation when micro_batches > 1).
  const int micro_batches = t.accumulate;
  const int64_t global_batch = int64_t(train_batch_per_rank(cfg)) * world_size;

  // Everything that reads files happens on every rank before training; then
  // the ranks agree, so that a rank that cannot (a path missing on its node, a
  // damaged checkpoint) does not leave the others waiting for it.
  DataStreams data;
  RunStart start;
  std::vector<std::string> notes;
  agree_on_startup(world, [&] {
    start = resolve_run_start(cfg);
    notes = start.notes;
    data = make_data_streams(cfg, rank, world_size, local_size);
    pin_images(data, *be);
    if (start.resume) {
      for (auto& n : check_resumable(cfg, *start.resume, data.train->epoch_size())) notes.push_back(std::move(n));
      load_model_weights(*start.resume, model, *be, WeightMatch::kExact);
      load_momentum(*start.resume, model.params(), opt.velocity(), *be);
    } else if (start.init_from) {
      const auto kept = load_model_weights(*start.init_from, model, *be, WeightMatch::kAllowNewClassifier);
      notes.push_back(fmt::format("initialised from the weights of {} ({}, {} classes){}", start.init_from->path,
                                  start.init_from->arch, start.init_from->num_classes,
                                  kept.empty() ? "" : "; the classifier (fc) is new: its size differs"));
    }
  });
  const int64_t epoch_size = data.train->epoch_size();
  data::DataCursor cursor{0, 0};
  int64_t first_step = 0;
  if (start.resume) {
    const auto& st = start.resume->state;
    first_step = st.step;
    cursor = data::normalize_train_cursor(st.cursor, epoch_size, global_batch);
    // Every rank must have read the same checkpoint (a shared output directory).
    int64_t seen[2] = {first_step, -first_step};
    if (world && world_size > 1) world->allreduce_max(seen, 2, "resume agreement");
    if (seen[0] != -seen[1])
      throw AgreedError("ranks resumed from different checkpoints: train.output_dir must be one shared directory");
  }

  // Checkpoints newer than where this run starts belong to a run it
  // replaces: set them aside so that --resume auto cannot pick them later.
  if (lead) {
    const std::string aside = set_aside_checkpoints(t.output_dir, first_step_if_resumed(start));
    if (!aside.empty()) notes.push_back("moved newer checkpoints of a replaced run to " + aside);
    // Written once the run is sure to start, so a refused resume leaves the run's own in place.
    std::ofstream ini(fs::path(t.output_dir) / "config.ini");
    ini << to_ini(cfg);
    if (!ini) throw UserError("cannot write " + (fs::path(t.output_dir) / "config.ini").string());
  }

  std::optional<DataParallel> dp;
  if (world) {
    DataParallelOptions o;
    if (!comm::parse_algorithm(cfg.comm.allreduce, &o.algorithm))
      throw UserError("comm.allreduce must be ring, mpi or nccl");
    if (!comm::parse_dtype(cfg.comm.dtype, &o.sync.wire)) throw UserError("comm.dtype must be fp32, bf16 or fp16");
    o.segment_bytes = size_t(cfg.comm.segment_kb) * 1024;
    o.sync.bucket_bytes = std::max<size_t>(4, size_t(cfg.comm.bucket_mb * double(1 << 20)));
    o.sync.overlap = cfg.comm.overlap;
    world->set_timeout(cfg.comm.timeout);
    dp.emplace(*world, model, o);
    dp->broadcast_weights();  // every replica starts from rank 0's weights
  }
  // With several ranks, an error must end the job while this rank's
  // communication thread still exists: unwinding first would wait for a
  // bucket whose peers may never answer.
  try {
    const int64_t steps_per_epoch = epoch_size / global_batch;
    // The run ends when the data position reaches train.epochs, or at
    // train.max_steps (counted from the start of the original run).
    int64_t total_steps = t.epochs > 0
                              ? first_step + data::train_steps_until(cursor, t.epochs, epoch_size, global_batch)
                              : std::numeric_limits<int64_t>::max();
    if (t.max_steps > 0) total_steps = std::min(total_steps, t.max_steps);
    // The schedule's horizon is train.epochs, whatever max_steps cuts off, so
    // a run split into jobs follows the same schedule as one long run.
    const double total_epochs = t.epochs > 0 ? t.epochs : double(t.max_steps) / double(steps_per_epoch);
    LrScheduleOptions so;
    so.base_lr = cfg.optim.linear_scaling ? scaled_lr(cfg.optim.lr, global_batch, cfg.optim.base_batch) : cfg.optim.lr;
    so.kind = cfg.optim.schedule;
    so.milestones = cfg.optim.milestones;
    so.step_epochs = cfg.optim.step_epochs;
    so.gamma = cfg.optim.gamma;
    so.min_lr = cfg.optim.min_lr;
    so.total_epochs = total_epochs;
    so.warmup_epochs = cfg.optim.warmup_epochs;
    so.warmup_start_factor = cfg.optim.warmup_start_factor;
    const LrSchedule schedule(so);

    TrainState run_state;
    run_state.base_lr = so.base_lr;
    run_state.lr_schedule = so.kind;
    run_state.world_size = world_size;
    run_state.batch_size = train_batch_per_rank(cfg);
    run_state.seed = t.seed;
    run_state.epoch_size = epoch_size;
    run_state.config_ini = to_ini(cfg);
    run_state.class_names = data.class_names;
    run_state.program_version = RN_VERSION;
    Checkpointer checkpointer(cfg.checkpoint, t.output_dir, run_state, model, *be, opt.velocity(), world,
                              dp ? &*dp : nullptr);

    // On a GPU the next batch's upload overlaps this step's backward.
    const auto inputs = be->make_upload_ring(Shape{t.batch_size, 3, cfg.data.image_size, cfg.data.image_size});
    std::optional<Evaluator> evaluator;
    if (data.val) evaluator.emplace(*be, cfg.model.num_classes, t.batch_size, cfg.data.image_size);
    // Every rank reports its own skipped corrupt images (each reads different ones).
    auto warn = [&](const std::vector<std::string>& warnings) {
      for (const auto& w : warnings) std::fprintf(stderr, "resnet-train[rank %d]: warning: %s\n", rank, w.c_str());
    };
    // Constructed after DataParallel, whose grad-ready callback it wraps.
    std::optional<GradAccumulator> accumulator;
    if (micro_batches > 1) accumulator.emplace(model, micro_batches);
    SoftmaxCrossEntropy loss(*be, float(cfg.optim.label_smoothing));
    const DType precision = resolved_precision(cfg);
    LossScaler scaler(precision == DType::kF16, cfg.gpu.loss_scale, cfg.gpu.loss_scale_window);

    say(
        fmt::format("resnet-train {}: {} ({:.2f}M parameters), backend {}, {} "
                    "rank(s) x batch {}{} = {}",
                    RN_VERSION, m.arch.name, model.params().param_count() / 1e6, be->name(), world_size, t.batch_size,
                    micro_batches > 1 ? fmt::format(" x {} accumulated", micro_batches) : "", global_batch));
    if (be->device() >= 0)
      say(fmt::format("rank 0: {}; {} activations{}", be->describe(), dtype_name(precision),
                      scaler.enabled() ? fmt::format(", loss scale {:g}", scaler.scale()) : ""));
    if (!device.note.empty()) say(device.note);
    if (dp && world_size > 1)
      say(fmt::format(
          "data parallel: {} all-reduce on {}, {} gradient bucket(s) of >= {:g} MiB, {} on the wire, overlap {}",
          cfg.comm.allreduce, dp->memory(), dp->buckets(), cfg.comm.bucket_mb, cfg.comm.dtype,
          cfg.comm.overlap ? "on" : "off"));
    say(data.description);
    for (const auto& n : notes) say(n);
    if (start.resume)
      say(fmt::format("resuming {} at step {}, epoch {} sample {} (saved by {} rank(s) x {} images per step)",
                      start.resume->path, first_step, cursor.epoch, cursor.sample, start.resume->state.world_size,
                      start.resume->state.batch_size));
    const bool capped = t.max_steps > 0 && total_steps == t.max_steps;
    say(fmt::format("{} steps{} ({:.2f} epochs of {} steps{}), base lr {:.4g} ({}), output {}", total_steps,
                    capped ? " (train.max_steps)" : "", total_epochs, steps_per_epoch,
                    capped && t.epochs > 0 ? "; the lr schedule spans them all" : "", so.base_lr, so.kind,
                    t.output_dir));

    SampleLog sample_log(rank);
    ProgressLine progress;
    TrainResult result;
    result.steps = first_step;
    using clock = std::chrono::steady_clock;
    const auto t_start = clock::now();
    auto t_window = t_start;
    StepTrace trace(comm::GradientSync::now());
    // Sums over the logging window: loss, correct, exposed comm seconds,
    // seconds waiting for data, scored images, skipped images.
    double window[6] = {0, 0, 0, 0, 0, 0};
    int64_t window_steps = 0;
    std::string last_checkpoint;
    if (first_step >= total_steps)
      say(fmt::format("nothing to train: the checkpoint is at step {} and the run ends at step {}", first_step,
                      total_steps));

    // A step's batch (batch_size x micro_batches images) is taken from the
    // loader and run as micro_batches slices of batch_size. Each slice is
    // uploaded while the pass before runs its backward (and, before a new
    // step, its gradient all-reduce): on a GPU the copy overlaps them (see
    // Backend::make_upload_ring). The batch stays the loader's until the next
    // fetch of a first slice, which comes after the step's last backward.
    struct Fetched {
      const data::Batch* batch = nullptr;
      const Tensor* input = nullptr;  // slice `micro` of the batch, uploaded
      int micro = 0;
      data::DataCursor after;  // the data position once this batch is used
      double wait = 0;         // seconds the loader kept us waiting for it
    };
    Fetched fetched;
    const int64_t image_floats = 3 * int64_t(cfg.data.image_size) * cfg.data.image_size;
    auto fetch = [&] {
      const int micro = fetched.batch && fetched.micro + 1 < micro_batches ? fetched.micro + 1 : 0;
      if (micro == 0) {
        // The loader takes the previous batch's memory back on next().
        inputs->wait_for_host_reads();
        const double wait_before = data.train->wait_seconds();
        fetched.batch = &data.train->next();
        fetched.wait = data.train->wait_seconds() - wait_before;
        fetched.after = data.train->cursor();
        RN_CHECK(
            fetched.batch->n == int64_t(t.batch_size) * micro_batches,
            fmt::format("a training batch of {} images, not {} x {}", fetched.batch->n, t.batch_size, micro_batches));
      }
      fetched.micro = micro;
      fetched.input = &inputs->upload(fetched.batch->images + micro * t.batch_size * image_floats, t.batch_size);
    };
    data.train->start(cursor);
    if (first_step < total_steps) fetch();
    for (int64_t step = first_step; step < total_steps; ++step) {
      fault.at(FaultInjection::Where::kStart, rank, step + 1);
      const bool tracing = lead && step - first_step < t.trace_steps;
      const double t0 = comm::GradientSync::now();
      const double lr = schedule.at(data::epoch_position(cursor, epoch_size, global_batch));
      const Fetched cur = fetched;
      const data::Batch& batch = *cur.batch;
      warn(batch.warnings);
      sample_log.add(batch);
      const int64_t skipped = batch.skipped;
      const float step_scale = scaler.scale();
      const int64_t done = step + 1;
      // The micro-batches' losses, each read while the next pass is queued.
      LossResult lr_res;
      double loss_sum = 0, tp = t0;
      auto add_loss = [&] {
        const LossResult r = loss.result();
        loss_sum += r.loss;
        lr_res.correct += r.correct;
        lr_res.counted += r.counted;
      };
      for (int micro = 0; micro < micro_batches; ++micro) {
        RN_CHECK(fetched.micro == micro, "micro-batches out of order");
        const bool last_micro = micro + 1 == micro_batches;
        if (micro > 0) add_loss();  // the pass before's, before this forward overwrites it
        loss.forward_backward(model.forward(*fetched.input, Mode::kTrain), batch.labels + micro * t.batch_size,
                              step_scale);
        const double t1 = comm::GradientSync::now();
        if (dp && last_micro) dp->begin_backward();
        if (accumulator) accumulator->begin_micro_batch(micro);
        model.backward(loss.grad());
        if (accumulator) accumulator->end_micro_batch();
        const double t2 = comm::GradientSync::now();
        // After the last pass `batch` is done with: the next fetch may reuse its memory.
        if (!last_micro || done < total_steps) fetch();
        if (tracing) {
          trace.span("forward+loss", done, tp, t1);
          trace.span("backward", done, t1, t2);
          trace.span("next batch", done, t2, comm::GradientSync::now());
        }
        tp = comm::GradientSync::now();
      }
      fault.at(FaultInjection::Where::kBackward, rank, done);
      const double t2b = comm::GradientSync::now();
      const double exposed = dp ? dp->finish_backward() : 0.0;
      const double t3 = comm::GradientSync::now();
      // fp16: a step whose (identically all-reduced) gradients overflowed is
      // skipped on every rank alike. The gradients are the loss scale times
      // the sum over the micro-batches: the update takes their mean.
      if (scaler.update(!scaler.enabled() || be->all_finite(model.params().flat_grads())))
        opt.step(float(lr), 1.f / (step_scale * float(micro_batches)));
      const double t4 = comm::GradientSync::now();
      // Read once the backward pass and the update are queued: a GPU is busy
      // with them meanwhile instead of idling until the host queues them.
      add_loss();
      lr_res.loss = loss_sum / micro_batches;
      if (tracing) {
        trace.span("wait for gradients", done, t2b, t3);
        trace.span("optimizer", done, t3, t4);
        trace.span("wait for loss", done, t4, comm::GradientSync::now());
        if (dp) trace.buckets(done, dp->bucket_timings());
        if (done - first_step == t.trace_steps || done == total_steps)
          trace.write((fs::path(t.output_dir) / "trace.json").string());
      }
      if (!std::isfinite(lr_res.loss))
        throw UserError(
            fmt::format("training diverged at step {}: loss is {}. Lower optim.lr (now {}) or add warm-up "
                        "(optim.warmup_epochs).",
                        done, lr_res.loss, lr));
      window[0] += lr_res.loss;
      window[1] += double(lr_res.correct);
      window[2] += exposed;
      window[3] += cur.wait;
      window[4] += double(lr_res.counted);
      window[5] += double(skipped);
      ++window_steps;
      result.steps = done;
      if (dp && cfg.comm.check_weights_every > 0 && done % cfg.comm.check_weights_every == 0) dp->check_weights(done);
      const data::DataCursor next = cur.after;
      const double ep = data::epoch_position(next, epoch_size, global_batch);

      // Every rank must stop, and save, at the same step: agree on the stop
      // flag and on rank 0's checkpoint clock.
      int64_t flags[2] = {g_stop_signal.load(), lead && checkpointer.due_by_time() ? 1 : 0};
      if (world && world_size > 1) world->allreduce_max(flags, 2, "stop-signal agreement");
      const int64_t stop_sig = flags[0];
      const bool last = done == total_steps;
      if (done % t.log_every == 0 || last || stop_sig) {
        be->synchronize();
        if (world && world_size > 1) world->allreduce_sum(window, 6, "training metrics");
        const auto now = clock::now();
        const double dt = std::chrono::duration<double>(now - t_window).count();
        const double elapsed = std::chrono::duration<double>(now - t_start).count();
        const double ips = double(window_steps * global_batch) / std::max(dt, 1e-9);
        result.final_loss = window[0] / double(window_steps * world_size);
        result.final_top1 = window[1] / std::max(window[4], 1.0);
        const double exposed_ms = 1e3 * window[2] / double(window_steps * world_size);
        const double wait_ms = 1e3 * window[3] / double(window_steps * world_size);
        if (metrics) {
          nlohmann::json rec = {{"type", "train"},
                                {"step", done},
                                {"epoch", ep},
                                {"loss", result.final_loss},
                                {"top1", result.final_top1},
                                {"lr", lr},
                                {"images_per_sec", ips},
                                {"elapsed_sec", elapsed},
                                {"ranks", world_size},
                                {"data_wait_ms", wait_ms}};
          if (window[5] > 0) rec["skipped_images"] = window[5];
          if (scaler.enabled()) {
            rec["loss_scale"] = scaler.scale();
            rec["skipped_steps"] = scaler.skipped();  // overflowed fp16 steps since this run's start
          }
          if (be->device() >= 0) rec["peak_device_mib"] = double(be->peak_memory_bytes()) / double(1 << 20);
          if (dp && world_size > 1) rec["comm_exposed_ms"] = exposed_ms;  // mean per step and rank
          metrics->write(rec);
        }
        const double eta = elapsed / double(done - first_step) * double(total_steps - done);
        if (lead)
          progress.update(fmt::format(
              "step {}/{}  epoch {:.2f}  loss {:.4f}  top1 {:.3f}  lr {:.4g}  {:.1f} img/s  data {:.0f}%{}  ETA {}",
              done, total_steps, ep, result.final_loss, result.final_top1, lr, ips,
              100.0 * window[3] / std::max(dt * world_size, 1e-9),
              world_size > 1 ? fmt::format("  comm {:.1f} ms", exposed_ms) : "", format_duration(eta)));
        std::fill(std::begin(window), std::end(window), 0.0);
        window_steps = 0;
        t_window = clock::now();
      }
      // Validate when an epoch that is a multiple of train.eval_every_epochs
      // is complete, and at the end (a function of the cursor, so a resumed
      // run validates where the uninterrupted one would).
      const bool epoch_done = next.epoch > cursor.epoch && next.epoch % t.eval_every_epochs == 0;
      cursor = next;
      if (evaluator && !stop_sig && (epoch_done || last)) {
        if (dp) dp->average_buffers();  // every rank evaluates with the same BN statistics
        std::vector<std::string> warnings;
        const EvalResult ev = evaluator->run(model, *data.val, world, &warnings);
        warn(warnings);
        result.val_top1 = ev.top1;
        if (lead) progress.finish();
        say(fmt::format("validation after step {} (epoch {:.2f}): loss {:.4f}, top1 {:.4f}, top5 {:.4f} on {} images{}",
                        done, ep, ev.loss, ev.top1, ev.top5, ev.images,
                        ev.skipped ? fmt::format(" ({} corrupt skipped)", ev.skipped) : ""));
        if (metrics)
          metrics->write({{"type", "eval"},
                          {"step", done},
                          {"epoch", ep},
                          {"val_loss", ev.loss},
                          {"val_top1", ev.top1},
                          {"val_top5", ev.top5},
                          {"val_images", ev.images}});
      }
      if (stop_sig || last || checkpointer.due_by_steps(done) || flags[1]) {
        const double t_save = comm::GradientSync::now();
        last_checkpoint = checkpointer.save(done, cursor, ep, lr, fault.checkpoint_hook(rank, done));
        if (lead) {
          progress.finish();
          std::error_code ec;
          const auto bytes = fs::file_size(last_checkpoint, ec);
          say(fmt::format("checkpoint {} (step {}, epoch {:.2f}): {:.1f} MB in {:.2f} s", last_checkpoint, done, ep,
                          ec ? 0.0 : double(bytes) / 1e6, comm::GradientSync::now() - t_save));
        }
      }
      if (after_step) after_step(done);
      if (stop_sig) {
        if (lead) progress.finish();
        result.interrupted = true;
        result.signal = int(stop_sig);
        say(fmt::format("received signal {} at step {}: saved {} and stopping", stop_sig, done, last_checkpoint));
        break;
      }
    }
    if (lead) progress.finish();
    const double secs = std::chrono::duration<double>(clock::now() - t_start).count();
    say(fmt::format("{} after {} steps in {}: train loss {:.4f}, train top1 {:.4f}{}{}",
                    result.interrupted ? "stopped" : "finished", result.steps, format_duration(secs), result.final_loss,
                    result.final_top1, result.val_top1 >= 0 ? fmt::format(", val top1 {:.4f}", result.val_top1) : "",
                    last_checkpoint.empty() ? "" : "; checkpoint " + last_checkpoint));
    if (world && world_size > 1) world->barrier("end of training");  // rank 0's checkpoint is on disk
    return result;
  } catch (const std::exception& e) {
    if (world && world_size > 1 && !dynamic_cast<const AgreedError*>(&e)) comm::abort_job_on(e);
    throw;
  }
}

}  // namespace rn
