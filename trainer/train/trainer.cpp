#include "trainer/train/trainer.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/synthetic_source.h"
#include "trainer/checkpoint/checkpoint_writer.h"
#include "trainer/core/error.h"
#include "trainer/model/resnet.h"
#include "trainer/nn/softmax_cross_entropy.h"
#include "trainer/optim/lr_schedule.h"
#include "trainer/optim/sgd.h"
#include "trainer/train/metrics_writer.h"
#include "trainer/train/run_log.h"

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

struct EvalResult {
  double loss = 0, top1 = 0;
};

EvalResult evaluate(ResNet& model, Backend& be, SoftmaxCrossEntropy& loss, const SyntheticSource& src,
                    int64_t samples, int batch, HostBatch& host, Tensor& input) {
  EvalResult r;
  int64_t done = 0;
  double loss_sum = 0;
  int64_t correct = 0;
  while (done < samples) {
    const int64_t n = std::min<int64_t>(batch, samples - done);
    HostBatch* hb = &host;
    HostBatch partial;
    Tensor in = input;
    if (n != host.n) {  // the last, smaller batch (outside the training loop)
      partial.resize(n, host.image_size);
      hb = &partial;
      in = be.allocate(Shape{n, 3, host.image_size, host.image_size}, Layout::kNCHW);
    }
    src.fill(/*stream=*/1, static_cast<uint64_t>(done), *hb);
    be.from_host(hb->images.data(), in);
    const auto lr = loss.forward_backward(model.forward(in, Mode::kEval), hb->labels.data());
    loss_sum += lr.loss * double(n);
    correct += lr.correct;
    done += n;
  }
  r.loss = loss_sum / double(samples);
  r.top1 = double(correct) / double(samples);
  return r;
}

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

TrainResult run_training(const Config& cfg) {
  if (cfg.data.source != "synthetic")
    throw UserError("data.source = '" + cfg.data.source +
                    "': this build reads only the built-in synthetic data; the HDF5 shard loader is not "
                    "implemented yet. Use --data.source=synthetic to smoke-test this recipe.");
  const Model m = resolve_model(cfg.model);
  const auto& t = cfg.train;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(t.output_dir, ec);
  if (ec) throw UserError("cannot create train.output_dir = '" + t.output_dir + "': " + ec.message());
  {
    std::ofstream ini(fs::path(t.output_dir) / "config.ini");
    ini << to_ini(cfg);
    if (!ini) throw UserError("cannot write " + (fs::path(t.output_dir) / "config.ini").string());
  }
  RunLog log((fs::path(t.output_dir) / "train.log").string());
  MetricsWriter metrics((fs::path(t.output_dir) / "metrics.jsonl").string());

  auto be = make_cpu_backend(t.threads);
  ResNet model(*be, m.arch, cfg.model.num_classes, m.shortcut);
  model.initialize(t.seed, cfg.model.zero_init_residual);
  const int world = 1;  // data-parallel ranks arrive with comm/
  const int64_t global_batch = int64_t(t.batch_size) * world;
  Sgd opt(*be, model.params(),
          SgdOptions{float(cfg.optim.momentum), cfg.optim.nesterov, float(cfg.optim.weight_decay),
                     cfg.optim.no_decay_bn_bias});
  const int64_t steps_per_epoch = std::max<int64_t>(1, cfg.data.synthetic_samples / global_batch);
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

  SyntheticSource src(SyntheticOptions{cfg.model.num_classes, cfg.data.image_size, cfg.data.synthetic_noise, t.seed});
  HostBatch host;
  host.resize(t.batch_size, cfg.data.image_size);
  Tensor input = be->allocate(Shape{t.batch_size, 3, cfg.data.image_size, cfg.data.image_size}, Layout::kNCHW);
  SoftmaxCrossEntropy loss(*be, float(cfg.optim.label_smoothing));

  log.line(fmt::format("resnet-train {}: {} ({:.2f}M parameters), backend {}, {} rank(s) x batch {} = {}", RN_VERSION,
                       m.arch.name, model.params().param_count() / 1e6, be->name(), world, t.batch_size,
                       global_batch));
  log.line(fmt::format("{} steps ({:.2f} epochs of {} steps), base lr {:.4g} ({}), output {}", total_steps,
                       total_epochs, steps_per_epoch, so.base_lr, so.kind, t.output_dir));

  StopSignals signals;
  ProgressLine progress;
  TrainResult result;
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  auto t_window = t_start;
  double window_loss = 0;
  int64_t window_correct = 0, window_steps = 0;
  int last_eval_epoch = 0;

  for (int64_t step = 0; step < total_steps; ++step) {
    const double epoch = double(step) / double(steps_per_epoch);
    const double lr = schedule.at(epoch);
    src.fill(/*stream=*/0, static_cast<uint64_t>(step) * uint64_t(global_batch), host);
    be->from_host(host.images.data(), input);
    const LossResult lr_res = loss.forward_backward(model.forward(input, Mode::kTrain), host.labels.data());
    model.backward(loss.grad());
    opt.step(float(lr));
    if (!std::isfinite(lr_res.loss))
      throw UserError(fmt::format("training diverged at step {}: loss is {}. Lower optim.lr (now {}) or add warm-up "
                                  "(optim.warmup_epochs).", step + 1, lr_res.loss, lr));
    window_loss += lr_res.loss;
    window_correct += lr_res.correct;
    ++window_steps;
    result.steps = step + 1;

    const bool last = step + 1 == total_steps;
    const int stop_sig = g_stop_signal.load();
    if ((step + 1) % t.log_every == 0 || last || stop_sig) {
      be->synchronize();
      const auto now = clock::now();
      const double dt = std::chrono::duration<double>(now - t_window).count();
      const double elapsed = std::chrono::duration<double>(now - t_start).count();
      const double ips = double(window_steps * global_batch) / std::max(dt, 1e-9);
      result.final_loss = window_loss / double(window_steps);
      result.final_top1 = double(window_correct) / double(window_steps * global_batch);
      const double ep = double(step + 1) / double(steps_per_epoch);
      metrics.write({{"type", "train"}, {"step", step + 1}, {"epoch", ep}, {"loss", result.final_loss},
                     {"top1", result.final_top1}, {"lr", lr}, {"images_per_sec", ips},
                     {"elapsed_sec", elapsed}});
      const double eta = elapsed / double(step + 1) * double(total_steps - step - 1);
      progress.update(fmt::format("step {}/{}  epoch {:.2f}  loss {:.4f}  top1 {:.3f}  lr {:.4g}  {:.1f} img/s  ETA {}",
                                  step + 1, total_steps, ep, result.final_loss, result.final_top1, lr, ips,
                                  format_duration(eta)));
      window_loss = 0;
      window_correct = 0;
      window_steps = 0;
      t_window = clock::now();
    }
    if (stop_sig) {
      progress.finish();
      result.interrupted = true;
      result.signal = stop_sig;
      log.line(fmt::format("received signal {} at step {}: saving a checkpoint and stopping", stop_sig, step + 1));
      break;
    }
    const int epoch_done = static_cast<int>((step + 1) / steps_per_epoch);
    const bool epoch_end = (step + 1) % steps_per_epoch == 0;
    if (cfg.data.val_samples > 0 && ((epoch_end && epoch_done - last_eval_epoch >= t.eval_every_epochs) || last)) {
      last_eval_epoch = epoch_done;
      const EvalResult ev = evaluate(model, *be, loss, src, cfg.data.val_samples, t.batch_size, host, input);
      result.val_top1 = ev.top1;
      progress.finish();
      log.line(fmt::format("validation after step {} (epoch {:.2f}): loss {:.4f}, top1 {:.4f} on {} images", step + 1,
                           double(step + 1) / double(steps_per_epoch), ev.loss, ev.top1, cfg.data.val_samples));
      metrics.write({{"type", "eval"}, {"step", step + 1}, {"epoch", double(step + 1) / double(steps_per_epoch)},
                     {"val_loss", ev.loss}, {"val_top1", ev.top1}});
    }
  }
  progress.finish();
  const std::string ckpt = (fs::path(t.output_dir) / "checkpoint.h5").string();
  save_checkpoint(ckpt, model, *be,
                  CheckpointMeta{result.steps, double(result.steps) / double(steps_per_epoch), to_ini(cfg)});
  const double secs = std::chrono::duration<double>(clock::now() - t_start).count();
  log.line(fmt::format("{} after {} steps in {}: train loss {:.4f}, train top1 {:.4f}{}; checkpoint {}",
                       result.interrupted ? "stopped" : "finished", result.steps, format_duration(secs),
                       result.final_loss, result.final_top1,
                       result.val_top1 >= 0 ? fmt::format(", val top1 {:.4f}", result.val_top1) : "", ckpt));
  return result;
}

}  // namespace rn
