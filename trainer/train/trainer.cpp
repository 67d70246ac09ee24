#include "trainer/train/trainer.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <thread>

#include "comm/allreduce.h"
#include "trainer/checkpoint/checkpoint_writer.h"
#include "trainer/core/error.h"
#include "trainer/model/resnet.h"
#include "trainer/nn/softmax_cross_entropy.h"
#include "trainer/optim/lr_schedule.h"
#include "trainer/optim/sgd.h"
#include "trainer/train/metrics_writer.h"
#include "trainer/train/data_parallel.h"
#include "trainer/train/data_streams.h"
#include "trainer/train/evaluator.h"
#include "trainer/train/run_log.h"
#include "trainer/train/step_trace.h"

namespace rn {
namespace {

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

// SIGINT/SIGTERM finish the current step, save a checkpoint and stop.
struct StopSignals {
  StopSignals() {
    g_stop_signal = 0;
    prev_int_ = std::signal(SIGINT, on_stop_signal);
    prev_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGINT, prev_int_);
    std::signal(SIGTERM, prev_term_);
  }
  void (*prev_int_)(int);
  void (*prev_term_)(int);
};

struct Model {
  ArchSpec arch;
  ShortcutType shortcut;
};

Model resolve_model(const ModelConfig& m) {
  Model r;
  if (!lookup_arch(m.arch, &r.arch)) throw UserError("config error: model.arch = '" + m.arch + "' is not known");
  r.shortcut = r.arch.shortcut;
  if (m.shortcut != "auto" && !parse_shortcut(m.shortcut, &r.shortcut))
    throw UserError("config error: model.shortcut = '" + m.shortcut + "'; allowed: auto, A, B, none");
  return r;
}

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
      throw UserError("RN_TEST_FAULT must be RANK:STEP:throw|backward|hang");
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
};

}  // namespace

void print_summary(const Config& cfg) {
  const Model m = resolve_model(cfg.model);
  auto be = make_cpu_backend(cfg.train.threads);
  ResNet net(*be, m.arch, cfg.model.num_classes, m.shortcut);
  const int64_t size = cfg.data.image_size;
  fmt::print("{} ({} classes, {}x{} input, shortcut {})\n", m.arch.name, cfg.model.num_classes, size, size,
             m.shortcut == ShortcutType::kProjection ? "B" : m.shortcut == ShortcutType::kPadIdentity ? "A" : "none");
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

TrainResult run_training(const Config& cfg, comm::Communicator* world, int local_size) {
  const Model m = resolve_model(cfg.model);
  const auto& t = cfg.train;
  const int rank = world ? world->rank() : 0;
  const int world_size = world ? world->size() : 1;
  const bool lead = rank == 0;  // only rank 0 prints and writes files
  namespace fs = std::filesystem;
  std::optional<RunLog> log;
  std::optional<MetricsWriter> metrics;
  if (lead) {
    std::error_code ec;
    fs::create_directories(t.output_dir, ec);
    if (ec) throw UserError("cannot create train.output_dir = '" + t.output_dir + "': " + ec.message());
    std::ofstream ini(fs::path(t.output_dir) / "config.ini");
    ini << to_ini(cfg);
    if (!ini) throw UserError("cannot write " + (fs::path(t.output_dir) / "config.ini").string());
    log.emplace((fs::path(t.output_dir) / "train.log").string());
    metrics.emplace((fs::path(t.output_dir) / "metrics.jsonl").string());
  }
  auto say = [&](const std::string& s) {
    if (log) log->line(s);
  };
  const FaultInjection fault;

  // Ranks sharing a node share its cores unless train.threads says otherwise.
  int threads = t.threads;
  if (threads == 0 && local_size > 1)
    threads = std::max(1, int(std::thread::hardware_concurrency()) / local_size);
  auto be = make_cpu_backend(threads);
  ResNet model(*be, m.arch, cfg.model.num_classes, m.shortcut);
  model.initialize(t.seed, cfg.model.zero_init_residual);
  if (cfg.model.frozen_bn) model.set_frozen_bn(true);

  // Open the datasets on every rank, then agree: a rank that cannot (a path
  // missing on its node, say) must not leave the others waiting for it.
  DataStreams data;
  {
    std::string error;
    try {
      data = make_data_streams(cfg, rank, world_size, local_size);
    } catch (const UserError& e) {
      error = e.what();
    }
    int64_t failed = error.empty() ? 0 : 1;
    if (world && world_size > 1) world->allreduce_max(&failed, 1, "dataset check");
    if (!error.empty()) throw UserError(error);
    if (failed) throw UserError("another rank could not open its dataset (its message says why); stopping");
  }

  std::optional<DataParallel> dp;
  if (world) {
    DataParallelOptions o;
    if (!comm::parse_algorithm(cfg.comm.allreduce, &o.algorithm)) throw UserError("comm.allreduce must be ring or mpi");
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
    const int64_t global_batch = int64_t(t.batch_size) * world_size;
    Sgd opt(*be, model.params(),
            SgdOptions{float(cfg.optim.momentum), cfg.optim.nesterov, float(cfg.optim.weight_decay),
                       cfg.optim.no_decay_bn_bias});
    const int64_t steps_per_epoch = data.train->batches_per_epoch();
    int64_t total_steps = static_cast<int64_t>(std::ceil(cfg.train.epochs * double(steps_per_epoch)));
    if (t.max_steps > 0 && (cfg.train.epochs <= 0 || t.max_steps < total_steps)) total_steps = t.max_steps;
    const double total_epochs = double(total_steps) / double(steps_per_epoch);
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

    Tensor input = be->allocate(Shape{t.batch_size, 3, cfg.data.image_size, cfg.data.image_size}, Layout::kNCHW);
    std::optional<Evaluator> evaluator;
    if (data.val) evaluator.emplace(*be, cfg.model.num_classes, t.batch_size, cfg.data.image_size);
    // Every rank reports its own skipped corrupt images (each reads different ones).
    auto warn = [&](const std::vector<std::string>& warnings) {
      for (const auto& w : warnings) std::fprintf(stderr, "resnet-train[rank %d]: warning: %s\n", rank, w.c_str());
    };
    SoftmaxCrossEntropy loss(*be, float(cfg.optim.label_smoothing));

    say(fmt::format("resnet-train {}: {} ({:.2f}M parameters), backend {}, {} rank(s) x batch {} = {}", RN_VERSION,
                    m.arch.name, model.params().param_count() / 1e6, be->name(), world_size, t.batch_size,
                    global_batch));
    if (dp && world_size > 1)
      say(fmt::format("data parallel: {} all-reduce, {} gradient bucket(s) of >= {:g} MiB, {} on the wire, overlap {}",
                      cfg.comm.allreduce, dp->buckets(), cfg.comm.bucket_mb, cfg.comm.dtype,
                      cfg.comm.overlap ? "on" : "off"));
    say(data.description);
    say(fmt::format("{} steps ({:.2f} epochs of {} steps), base lr {:.4g} ({}), output {}", total_steps, total_epochs,
                    steps_per_epoch, so.base_lr, so.kind, t.output_dir));

    StopSignals signals;
    ProgressLine progress;
    TrainResult result;
    using clock = std::chrono::steady_clock;
    const auto t_start = clock::now();
    auto t_window = t_start;
    StepTrace trace(comm::GradientSync::now());
    // Sums over the logging window: loss, correct, exposed comm seconds,
    // seconds waiting for data, scored images, skipped images.
    double window[6] = {0, 0, 0, 0, 0, 0};
    int64_t window_steps = 0;
    int last_eval_epoch = 0;

    data.train->start({0, 0});
    for (int64_t step = 0; step < total_steps; ++step) {
      fault.at(FaultInjection::Where::kStart, rank, step + 1);
      const bool tracing = lead && step < t.trace_steps;
      const double t0 = comm::GradientSync::now();
      const double epoch = double(step) / double(steps_per_epoch);
      const double lr = schedule.at(epoch);
      const double wait_before = data.train->wait_seconds();
      const data::Batch& batch = data.train->next();
      const double data_wait = data.train->wait_seconds() - wait_before;
      warn(batch.warnings);
      be->from_host(batch.images, input);
      const LossResult lr_res = loss.forward_backward(model.forward(input, Mode::kTrain), batch.labels);
      const double t1 = comm::GradientSync::now();
      if (dp) dp->begin_backward();
      model.backward(loss.grad());
      fault.at(FaultInjection::Where::kBackward, rank, step + 1);
      const double t2 = comm::GradientSync::now();
      const double exposed = dp ? dp->finish_backward() : 0.0;
      const double t3 = comm::GradientSync::now();
      opt.step(float(lr));
      if (tracing) {
        trace.span("data+forward+loss", step + 1, t0, t1);
        trace.span("backward", step + 1, t1, t2);
        trace.span("wait for gradients", step + 1, t2, t3);
        trace.span("optimizer", step + 1, t3, comm::GradientSync::now());
        if (dp) trace.buckets(step + 1, dp->bucket_timings());
        if (step + 1 == t.trace_steps || step + 1 == total_steps)
          trace.write((fs::path(t.output_dir) / "trace.json").string());
      }
      if (!std::isfinite(lr_res.loss))
        throw UserError(fmt::format("training diverged at step {}: loss is {}. Lower optim.lr (now {}) or add warm-up "
                                    "(optim.warmup_epochs).", step + 1, lr_res.loss, lr));
      window[0] += lr_res.loss;
      window[1] += double(lr_res.correct);
      window[2] += exposed;
      window[3] += data_wait;
      window[4] += double(lr_res.counted);
      window[5] += double(batch.skipped);
      ++window_steps;
      result.steps = step + 1;
      if (dp && cfg.comm.check_weights_every > 0 && (step + 1) % cfg.comm.check_weights_every == 0)
        dp->check_weights(step + 1);

      // Every rank must stop at the same step: agree on the stop flag.
      int64_t stop_sig = g_stop_signal.load();
      if (world && world_size > 1) world->allreduce_max(&stop_sig, 1, "stop-signal agreement");
      const bool last = step + 1 == total_steps;
      if ((step + 1) % t.log_every == 0 || last || stop_sig) {
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
        const double ep = double(step + 1) / double(steps_per_epoch);
        if (metrics) {
          nlohmann::json rec = {{"type", "train"}, {"step", step + 1}, {"epoch", ep}, {"loss", result.final_loss},
                                {"top1", result.final_top1}, {"lr", lr}, {"images_per_sec", ips},
                                {"elapsed_sec", elapsed}, {"ranks", world_size}, {"data_wait_ms", wait_ms}};
          if (window[5] > 0) rec["skipped_images"] = window[5];
          if (dp && world_size > 1) rec["comm_exposed_ms"] = exposed_ms;  // mean per step and rank
          metrics->write(rec);
        }
        const double eta = elapsed / double(step + 1) * double(total_steps - step - 1);
        if (lead)
          progress.update(fmt::format(
              "step {}/{}  epoch {:.2f}  loss {:.4f}  top1 {:.3f}  lr {:.4g}  {:.1f} img/s  data {:.0f}%{}  ETA {}",
              step + 1, total_steps, ep, result.final_loss, result.final_top1, lr, ips,
              100.0 * window[3] / std::max(dt * world_size, 1e-9),
              world_size > 1 ? fmt::format("  comm {:.1f} ms", exposed_ms) : "", format_duration(eta)));
        std::fill(std::begin(window), std::end(window), 0.0);
        window_steps = 0;
        t_window = clock::now();
      }
      if (stop_sig) {
        if (lead) progress.finish();
        result.interrupted = true;
        result.signal = int(stop_sig);
        say(fmt::format("received signal {} at step {}: saving a checkpoint and stopping", stop_sig, step + 1));
        break;
      }
      const int epoch_done = static_cast<int>((step + 1) / steps_per_epoch);
      const bool epoch_end = (step + 1) % steps_per_epoch == 0;
      if (evaluator && ((epoch_end && epoch_done - last_eval_epoch >= t.eval_every_epochs) || last)) {
        last_eval_epoch = epoch_done;
        if (dp) dp->average_buffers();  // every rank evaluates with the same BN statistics
        std::vector<std::string> warnings;
        const EvalResult ev = evaluator->run(model, *data.val, world, &warnings);
        warn(warnings);
        result.val_top1 = ev.top1;
        if (lead) progress.finish();
        say(fmt::format("validation after step {} (epoch {:.2f}): loss {:.4f}, top1 {:.4f}, top5 {:.4f} on {} images{}",
                        step + 1, double(step + 1) / double(steps_per_epoch), ev.loss, ev.top1, ev.top5, ev.images,
                        ev.skipped ? fmt::format(" ({} corrupt skipped)", ev.skipped) : ""));
        if (metrics)
          metrics->write({{"type", "eval"}, {"step", step + 1}, {"epoch", double(step + 1) / double(steps_per_epoch)},
                          {"val_loss", ev.loss}, {"val_top1", ev.top1}, {"val_top5", ev.top5},
                          {"val_images", ev.images}});
      }
    }
    if (lead) progress.finish();
    if (dp) dp->average_buffers();
    const std::string ckpt = (fs::path(t.output_dir) / "checkpoint.h5").string();
    if (lead)
      save_checkpoint(ckpt, model, *be,
                      CheckpointMeta{result.steps, double(result.steps) / double(steps_per_epoch), to_ini(cfg)});
    const double secs = std::chrono::duration<double>(clock::now() - t_start).count();
    say(fmt::format("{} after {} steps in {}: train loss {:.4f}, train top1 {:.4f}{}; checkpoint {}",
                    result.interrupted ? "stopped" : "finished", result.steps, format_duration(secs), result.final_loss,
                    result.final_top1, result.val_top1 >= 0 ? fmt::format(", val top1 {:.4f}", result.val_top1) : "",
                    ckpt));
    if (world && world_size > 1) world->barrier("end of training");  // rank 0's checkpoint is on disk
    return result;
  } catch (const std::exception& e) {
    if (world && world_size > 1) comm::abort_job_on(e);
    throw;
  }
}

}  // namespace rn
