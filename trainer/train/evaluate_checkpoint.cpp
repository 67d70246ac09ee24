// --eval-only: one validation pass over a checkpoint (trainer.h).
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "comm/communicator.h"
#include "trainer/checkpoint/checkpoint_reader.h"
#include "trainer/core/error.h"
#include "trainer/model/resnet.h"
#include "trainer/train/data_streams.h"
#include "trainer/train/metrics_writer.h"
#include "trainer/train/model_setup.h"
#include "trainer/train/startup.h"
#include "trainer/train/trainer.h"

namespace rn {

EvalResult evaluate_checkpoint(const Config& cfg, comm::Communicator* world, RankPlacement where) {
  const int local_size = where.local_size;
  const ModelChoice m = resolve_model(cfg.model);
  const int rank = world ? world->rank() : 0;
  const int world_size = world ? world->size() : 1;
  auto be = make_rank_backend(cfg, where);
  TensorPool activations(*be);  // no backward: a few activations at a time, not every layer's
  ResNet model(*be, m.arch, cfg.model.num_classes, m.shortcut);
  model.set_output_pool(&activations);
  DataStreams data;
  CheckpointInfo ck;
  agree_on_startup(world, [&] {
    ck = read_checkpoint_info(cfg.checkpoint.resume);
    load_model_weights(ck, model, *be, WeightMatch::kExact);
    data = make_data_streams(cfg, rank, world_size, local_size);
    pin_images(data, *be);
    if (!data.val)
      throw UserError(
          "--eval-only needs validation data: set data.val (hdf5 shards) or data.val_samples > 0 "
          "(synthetic)");
  });
  Evaluator evaluator(*be, cfg.model.num_classes, cfg.train.batch_size, cfg.data.image_size);
  std::vector<std::string> warnings;
  const EvalResult ev = evaluator.run(model, *data.val, world, &warnings);
  for (const auto& w : warnings) std::fprintf(stderr, "resnet-train[rank %d]: warning: %s\n", rank, w.c_str());
  if (rank == 0) {
    std::fprintf(stdout, "%s (step %lld): loss %.4f, top1 %.4f, top5 %.4f on %lld images (%s %s)%s\n", ck.path.c_str(),
                 static_cast<long long>(ck.state.step), ev.loss, ev.top1, ev.top5, static_cast<long long>(ev.images),
                 cfg.data.source == "hdf5" ? cfg.data.val.c_str() : "synthetic", cfg.data.val_augment.c_str(),
                 ev.skipped ? fmt::format(", {} corrupt skipped", ev.skipped).c_str() : "");
    std::error_code ec;
    std::filesystem::create_directories(cfg.train.output_dir, ec);
    MetricsWriter metrics((std::filesystem::path(cfg.train.output_dir) / "metrics.jsonl").string());
    metrics.write({{"type", "eval"},
                   {"eval_only", true},
                   {"checkpoint", ck.path},
                   {"step", ck.state.step},
                   {"epoch", ck.state.epoch_position},
                   {"val_loss", ev.loss},
                   {"val_top1", ev.top1},
                   {"val_top5", ev.top5},
                   {"val_images", ev.images},
                   {"val_augment", cfg.data.val_augment}});
  }
  return ev;
}

}  // namespace rn
