// Configuration of resnet-train.
//
// A run is described by an INI file plus command-line overrides:
//
//   resnet-train --config configs/resnet50.cfg --optim.lr=0.2 --train.epochs=1
//
// Precedence (highest first): command line, config file, built-in defaults
// (the member initialisers below). Every key is `section.key`; in the file it
// is `key = value` under `[section]`, on the command line `--section.key=VALUE`
// (or `--section.key VALUE`). A few keys also have a short command-line
// alias (`--allreduce=X` is `--comm.allreduce=X`, `--comm-timeout=S` is
// `--comm.timeout=S`; see help_text).
//
// Value syntax: numbers in C notation (0.1, 1e-4); booleans true/false, 1/0,
// yes/no (on the command line a bare `--model.zero_init_residual` means
// true); lists (optim.milestones) comma-separated, possibly empty. `#` starts
// a comment in the file, so string values cannot contain it.
//
// Units: "epochs" are passes over data.synthetic_samples images (synthetic)
// or over the training shards (hdf5) and may be fractional; "steps" are
// optimizer updates; batch sizes are images per rank, so the global batch is
// train.batch_size x train.accumulate x world size.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace rn {

struct ModelConfig {
  // Architecture name: resnet18/34/50/101/152, plain18/34, cifar-resnetN or
  // cifar-plainN with N = 6n+2 >= 8 (see trainer/model/arch.h).
  std::string arch = "cifar-resnet20";
  // Output classes of the final fully connected layer (>= 2).
  int num_classes = 10;
  // Shortcut where the shape changes: "auto" (the arch's own: A for
  // cifar-resnet*, B for resnet*, none for plain*), "A" (strided identity +
  // zero-padded channels), "B" (1x1 projection conv + BN), "none" (plain net;
  // removes every shortcut). Plain archs accept only auto or none.
  std::string shortcut = "auto";
  // Initialise the last BN gamma of each residual branch to 0 (Goyal et al.
  // 2017), so every block starts as the identity.
  bool zero_init_residual = false;
  // Frozen batch norm: BN uses its running statistics in training too and
  // does not update them (gamma and beta still learn); for fine-tuning with
  // small per-rank batches and for exact data-parallel equivalence tests.
  bool frozen_bn = false;

  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;
};

struct DataConfig {
  // "synthetic" (generated in memory from train.seed) or "hdf5" (shards
  // written by resnet-data, see data/FORMAT.md).
  std::string source = "synthetic";
  // hdf5: directory of the training shards (required) and of the
  // validation shards ("" = no validation). Relative to the working directory.
  std::string train;
  std::string val;
  // Side of the square network input, in pixels (>= 8; >= 32 for the
  // ImageNet archs, whose stem and stages downsample by 32).
  int image_size = 32;
  // Images per synthetic training epoch (>= 1).
  int64_t synthetic_samples = 4096;
  // Standard deviation of the noise in synthetic images (>= 0; larger is
  // harder to learn).
  double synthetic_noise = 0.5;
  // Images per validation pass: synthetic: generated; hdf5: the first N of
  // data.val (-1: all of it). 0: no validation.
  int64_t val_samples = 512;
  // hdf5 training augmentation (data/augment.h): scale (He et al.: shorter
  // side in [scale_min, scale_max], random crop) | inception (random-resized
  // crop, area in [area_min, 1]) | cifar (pad cifar_pad, random crop) |
  // center (no randomness but the flip).
  std::string train_augment = "scale";
  // hdf5 validation: center (resize the shorter side to val_resize, centre
  // crop) | tencrop (the 10-crop average of He et al. Sec. 3.4).
  std::string val_augment = "center";
  int scale_min = 256;  // scale: shorter-side range, pixels
  int scale_max = 480;
  double area_min = 0.08;  // inception: smallest crop, fraction of the image area, in (0, 1]
  int cifar_pad = 4;       // cifar: black border, pixels (>= 0)
  // Shorter side before the validation crop, pixels; 0: image_size / 0.875
  // rounded (256 for 224). Must be >= image_size.
  int val_resize = 0;
  bool flip = true;  // random horizontal flip in training
  // AlexNet PCA colour lighting std-dev (>= 0; 0: off; fb.resnet.torch: 0.1).
  double lighting = 0;
  // Per-channel RGB mean and std-dev in pixel/255 units (3 values each).
  std::vector<double> mean{0.485, 0.456, 0.406};
  std::vector<double> std{0.229, 0.224, 0.225};
  // Decode/augment threads per rank and loader (>= 0; 0: this rank's cores:
  // its CPU affinity when the launcher binds it, else the node's cores
  // divided among its ranks).
  int loader_threads = 0;
  // Batches decoded ahead of the one in use (>= 1).
  int prefetch = 3;
  // Corrupt images skipped (with a warning naming shard and index) before
  // the run stops, per rank and loader (>= 0).
  int64_t max_bad_samples = 100;

  friend bool operator==(const DataConfig&, const DataConfig&) = default;
};

struct OptimConfig {
  // Base learning rate (> 0), before linear scaling and warm-up.
  double lr = 0.1;
  // SGD momentum coefficient, in [0, 1).
  double momentum = 0.9;
  // Nesterov momentum (needs momentum > 0).
  bool nesterov = false;
  // L2 weight decay coefficient (>= 0).
  double weight_decay = 1e-4;
  // Exempt BN parameters and biases from weight decay.
  bool no_decay_bn_bias = false;
  // Learning-rate schedule: constant | step | multistep | cosine.
  std::string schedule = "multistep";
  // Epochs at which multistep multiplies the lr by gamma; strictly
  // increasing, >= 0. Empty: the lr never decays.
  std::vector<double> milestones;
  // Period in epochs of the step schedule (> 0).
  double step_epochs = 30;
  // Decay factor of step and multistep, in (0, 1].
  double gamma = 0.1;
  // Floor of the cosine schedule (absolute lr, >= 0).
  double min_lr = 0;
  // Linear warm-up length in epochs (>= 0; 0: none). The lr ramps from
  // warmup_start_factor x lr to lr.
  double warmup_epochs = 0;
  // Warm-up starting factor, in (0, 1].
  double warmup_start_factor = 0.1;
  // Goyal et al. linear scaling: lr *= global_batch / base_batch.
  bool linear_scaling = false;
  // Reference global batch of linear scaling, in images (>= 1).
  int base_batch = 256;
  // Label smoothing epsilon of the cross-entropy loss, in [0, 1).
  double label_smoothing = 0;

  friend bool operator==(const OptimConfig&, const OptimConfig&) = default;
};

struct TrainConfig {
  // Images per rank per forward/backward pass (>= 1).
  int batch_size = 64;
  // Micro-batches per optimizer step (gradient accumulation, >= 1): a rank
  // runs `accumulate` passes of batch_size images and sums their gradients
  // before one update, so a step trains on batch_size x accumulate images
  // per rank (a recipe's global batch on fewer GPUs, at batch_size's memory).
  int accumulate = 1;
  // Training length in epochs (> 0 unless max_steps > 0; may be fractional).
  double epochs = 4;
  // Stop after this many optimizer steps (>= 0; 0: epochs decide), counted
  // from the start of the run (a resumed run continues the count). When
  // both are set, whichever comes first ends training; the learning-rate
  // schedule still spans train.epochs, so a run split into several jobs
  // follows the schedule of one long run.
  int64_t max_steps = 0;
  // Log training loss/throughput every this many steps (>= 1).
  int log_every = 10;
  // Validate every this many epochs (>= 1).
  int eval_every_epochs = 1;
  // Seed of weight initialisation, data order and synthetic data.
  uint64_t seed = 1;
  // OpenMP threads per rank (>= 0; 0: this rank's cores: its CPU affinity
  // when the launcher binds it (srun, mpirun --bind-to core), else the node's
  // cores divided among its ranks; the OpenMP default when alone and unbound).
  int threads = 0;
  // Directory for logs, the effective config and checkpoints.
  std::string output_dir = "runs/demo";
  // Record the first N steps' forward/backward/all-reduce timeline into
  // <output_dir>/trace.json (Chrome trace format, rank 0); >= 0, 0: off.
  int trace_steps = 0;
  // Where each rank computes: "cpu" (oneDNN) or "cuda" (one GPU per rank:
  // the rank's position on its node modulo the visible GPUs, so
  // CUDA_VISIBLE_DEVICES and Slurm's GPU binding apply).
  std::string device = "cpu";
  // Activation dtype: "auto" (cuda: bf16 on compute capability >= 8.0, else
  // fp16 with loss scaling; cpu: fp32) | fp32 (NCHW, the reference) | bf16 |
  // fp16. Parameters, gradients, BN and the optimizer stay fp32.
  std::string precision = "auto";

  friend bool operator==(const TrainConfig&, const TrainConfig&) = default;
};

// GPU-only settings (train.device = cuda).
struct GpuConfig {
  // cuDNN convolution algorithms, chosen once per layer shape: "heuristic"
  // (cuDNN's ranking, instant) | "find" (each candidate timed once at start).
  std::string conv_algo = "heuristic";
  // Largest convolution workspace in MiB (>= 0): algorithms needing more are
  // not used. One arena serves every convolution.
  int64_t workspace_mb = 1024;
  // Only convolution algorithms cuDNN marks deterministic (no atomics), so a
  // run repeats bit for bit on the same GPU, model and data; may be slower.
  bool deterministic = false;
  // fp16 only: initial loss scale (> 0; a power of two). Halved on every
  // step whose gradients overflow (the step is skipped and counted); doubled
  // after gpu.loss_scale_window clean steps.
  double loss_scale = 65536;
  int loss_scale_window = 2000;

  friend bool operator==(const GpuConfig&, const GpuConfig&) = default;
};

// Gradient communication between data-parallel ranks.
struct CommConfig {
  // All-reduce implementation: "ring" (the project's own ring all-reduce over
  // MPI point-to-point; on GPUs through CUDA-aware MPI or pinned host
  // staging), "mpi" (MPI_Allreduce, for comparison) or "nccl" (GPUs only,
  // for comparison).
  std::string allreduce = "ring";
  // Gradient bucket size in MiB (> 0): gradients are all-reduced in buckets
  // of about this size.
  double bucket_mb = 25;
  // Gradient dtype on the wire: fp32 | bf16 | fp16 (reduced with fp32
  // accumulation).
  std::string dtype = "fp32";
  // Ring pipelining segment size in KiB (>= 1).
  int segment_kb = 256;
  // Seconds a collective may take before the job is aborted naming the
  // missing rank (> 0).
  double timeout = 300;
  // Every this many steps all ranks compare a hash of their weights
  // (>= 0; 0: off).
  int64_t check_weights_every = 1000;
  // Start each bucket's all-reduce while backward continues (false: all-reduce
  // after backward; for comparison).
  bool overlap = true;

  friend bool operator==(const CommConfig&, const CommConfig&) = default;
};

// Checkpoints (docs/CHECKPOINT.md): where a run starts from and how often
// it saves. Files are <train.output_dir>/checkpoint-<step>.h5, and
// checkpoint.h5 links to the newest.
struct CheckpointConfig {
  // Continue a run: "" (start fresh), "auto" (the newest complete checkpoint
  // in train.output_dir, or start fresh when there is none) or a checkpoint
  // path. Restores weights, optimizer state, step, schedule and data cursor.
  std::string resume;
  // Start from a checkpoint's weights only (a new run: step 0, fresh
  // optimizer); a different model.num_classes keeps a fresh classifier.
  std::string init_from;
  // Complete checkpoints kept in train.output_dir, newest first (>= 1).
  int keep = 3;
  // Save every this many steps (>= 0; 0: off).
  int64_t every_steps = 0;
  // Save when this many minutes have passed since the last save (>= 0; 0: off).
  double every_minutes = 30;

  friend bool operator==(const CheckpointConfig&, const CheckpointConfig&) = default;
};

struct Config {
  ModelConfig model;
  DataConfig data;
  OptimConfig optim;
  TrainConfig train;
  CommConfig comm;
  CheckpointConfig checkpoint;
  GpuConfig gpu;
  // Path given with --config ("" when none). Not an INI key.
  std::string config_file;

  friend bool operator==(const Config&, const Config&) = default;
};

enum class CliAction {
  kTrain,    // run training with `config`
  kSummary,  // --summary: print the architecture table of `config` and exit
  kEval,     // --eval-only: evaluate checkpoint.resume on data.val and exit
  kHelp,     // --help: print help_text and exit 0
  kVersion,  // --version: print help_text (the version line) and exit 0
};

struct CliRequest {
  CliAction action = CliAction::kTrain;
  Config config;          // valid (validate() passed) for kTrain and kSummary
  std::string help_text;  // usage + options for kHelp; "resnet-train X.Y.Z" for kVersion
  // "section.key" of every option set in the config file or on the command
  // line (the rest kept their built-in defaults).
  std::set<std::string> given_keys;
};

// Parses argv (argv[0] is the program name). --help and --version return at
// once without reading the config file. Otherwise reads --config (if given),
// applies command-line overrides and calls validate(). Throws rn::UserError
// with a one-paragraph message naming the key, where it came from and what is
// allowed (unknown keys get a "did you mean" suggestion).
//
// base_ini: the configuration to start from when no --config is given (the
// text a checkpoint stores, so `--resume PATH` alone continues that run);
// base_origin names it in messages.
CliRequest parse_command_line(int argc, const char* const* argv, const std::string& base_ini = "",
                              const std::string& base_origin = "");

// Checks ranges and cross-field rules; throws rn::UserError naming the key
// and the allowed values. parse_command_line calls it.
void validate(const Config& c);

// The effective configuration as INI text with every key, so that
// `resnet-train --config <that file>` re-parses to the same Config (except
// config_file, which is recorded as a comment).
std::string to_ini(const Config& c);

// The usage text printed by --help (every option, its default, a line of
// description, grouped by section).
std::string help_text();

// Every INI key as "section.key", in help/INI order.
std::vector<std::string> config_keys();

}  // namespace rn
