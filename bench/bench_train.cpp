// resnet-bench train: times full training steps (forward, loss, backward,
// SGD update with momentum 0.9 and weight decay 1e-4) on fixed random data
// after warm-up steps, the same work as the PyTorch peer scripts (CPU:
// bench/torch_peer; GPU: torch_gpu_bench.py with data already on the GPU).
// Reports model FLOP utilisation against --peak-tflops when given: a
// training step costs 6 x multiply-adds per image (forward 2, backward 4).
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "bench/benches.h"
#include "trainer/core/error.h"
#include "trainer/model/resnet.h"
#include "trainer/nn/softmax_cross_entropy.h"
#include "trainer/optim/sgd.h"

namespace po = boost::program_options;

namespace rn::bench {

int train(const po::variables_map& vm) {
  const std::string model_name = vm["model"].as<std::string>();
  const int batch = vm["batch"].as<int>(), steps = vm["steps"].as<int>(), warmup = vm["warmup"].as<int>();
  const int threads = vm["threads"].as<int>();
  rn::ArchSpec arch;
  if (!rn::lookup_arch(model_name, &arch)) {
    std::string names;
    for (const auto& n : rn::known_arch_names()) names += (names.empty() ? "" : ", ") + n;
    throw rn::UserError("--model '" + model_name + "' is not known; allowed: " + names);
  }
  const int size = vm.count("image-size") ? vm["image-size"].as<int>() : arch.default_image_size;
  const int classes = vm.count("classes") ? vm["classes"].as<int>() : arch.default_classes;
  if (batch < 1 || steps < 1 || warmup < 0 || size < 8 || classes < 2)
    throw rn::UserError("need --batch >= 1, --steps >= 1, --warmup >= 0, --image-size >= 8, --classes >= 2");

  rn::BackendOptions bo;
  bo.device = vm["device"].as<std::string>();
  bo.threads = threads;
  bo.conv_algo = vm["conv-algo"].as<std::string>();
  const std::string prec = vm["precision"].as<std::string>();
  if (!rn::parse_dtype(prec == "auto" ? (bo.device == "cuda" ? "bf16" : "fp32") : prec, &bo.precision))
    throw rn::UserError("--precision must be auto, fp32, bf16 or fp16");
  auto be = rn::make_backend(bo);
  rn::ResNet net(*be, arch, classes);
  net.set_output_pool(&net.grad_pool());  // as resnet-train: activations and their gradients share storage
  net.initialize(0, false);
  rn::Sgd opt(*be, net.params(), rn::SgdOptions{0.9f, false, 1e-4f, false});
  rn::SoftmaxCrossEntropy loss(*be);
  std::mt19937_64 rng(0);
  std::normal_distribution<float> nd;
  std::vector<float> host(static_cast<size_t>(batch) * 3 * size * size);
  for (auto& v : host) v = nd(rng);
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  for (auto& l : labels) l = static_cast<int32_t>(rng() % static_cast<uint64_t>(classes));
  rn::Tensor x = be->allocate(rn::Shape{batch, 3, size, size}, rn::Layout::kNCHW);
  be->from_host(host.data(), x);

  // fp16 as the trainer runs it: a fixed loss scale here (no overflow in a
  // handful of steps), the finiteness check and the unscaled update.
  const float scale = bo.precision == rn::DType::kF16 ? 1024.f : 1.f;
  auto step = [&] {
    loss.forward_backward(net.forward(x, rn::Mode::kTrain), labels.data(), scale);
    net.backward(loss.grad());
    if (scale == 1.f || be->all_finite(net.params().flat_grads())) opt.step(0.01f, 1.f / scale);
    (void)loss.result();  // the trainer reads every step's loss (PyTorch's peer reads none)
  };
  for (int i = 0; i < warmup; ++i) step();
  be->synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  be->synchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double ips = double(batch) * steps / secs;
  const char* omp = std::getenv("OMP_NUM_THREADS");
  const int used_threads = threads > 0 ? threads : (omp ? std::atoi(omp) : 0);
  const double tflops = 6.0 * double(net.macs(rn::Shape{1, 3, size, size})) * ips / 1e12;
  const double peak = vm["peak-tflops"].as<double>();
  if (vm.count("json")) {
    nlohmann::json j{{"engine", "resnet-hpc-" RN_VERSION},
                     {"backend", be->name()},
                     {"device", be->describe()},
                     {"precision", rn::dtype_name(bo.precision)},
                     {"model", model_name},
                     {"batch", batch},
                     {"image_size", size},
                     {"threads", used_threads},
                     {"steps", steps},
                     {"ms_per_step", secs * 1e3 / steps},
                     {"images_per_sec", ips},
                     {"model_tflops", tflops}};
    if (be->device() >= 0) j["peak_mem_gib"] = double(be->peak_memory_bytes()) / double(1ull << 30);
    if (peak > 0) j["mfu"] = tflops / peak;
    std::cout << j.dump() << std::endl;
  } else {
    fmt::print("{:<16} {:>6} {:>6} {:>8} {:>12} {:>12}\n", "model", "batch", "size", "threads", "ms/step", "images/s");
    fmt::print("{:<16} {:>6} {:>6} {:>8} {:>12.1f} {:>12.2f}\n", model_name, batch, size, used_threads,
               secs * 1e3 / steps, ips);
  }
  return 0;
}


po::options_description train_options() {
  po::options_description opts("resnet-bench train options");
  opts.add_options()("help,h", "show this help")("model", po::value<std::string>()->default_value("resnet50"),
                                                 "architecture (as model.arch)")(
      "batch", po::value<int>()->default_value(16), "images per step")(
      "image-size", po::value<int>(), "input side in pixels (default: the arch's, 224 or 32)")(
      "classes", po::value<int>(), "classes (default: the arch's, 1000 or 10)")(
      "steps", po::value<int>()->default_value(5), "timed steps")("warmup", po::value<int>()->default_value(1),
                                                                  "untimed steps first (primitive creation, caches)")(
      "threads", po::value<int>()->default_value(0), "OpenMP threads (0: OMP_NUM_THREADS or all cores)")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu | cuda (GPU 0 of the visible ones)")(
      "precision", po::value<std::string>()->default_value("auto"), "auto | fp32 | bf16 | fp16 (cuda)")(
      "conv-algo", po::value<std::string>()->default_value("heuristic"), "cuda: heuristic | find")(
      "peak-tflops", po::value<double>()->default_value(0), "the card's measured matrix rate, for MFU (0: off)")(
      "json", "print one JSON object instead of a table");
  return opts;
}

}  // namespace rn::bench
