// resnet-infer: classify images with a checkpoint of resnet-train (or one
// made by tools/import_torch.py).
//
//   resnet-infer --checkpoint CK [--classes DATASET] [--top K] [--json] IMAGE...
//   resnet-infer --checkpoint CK --input X.h5 --output Y.h5 [--batch N]
//   ... [--device cuda [--gpu N] [--precision bf16]]
//
// JPEG images are preprocessed as the run's validation images (centre crop
// of its data.* settings); HDF5 input is used as given. Exit codes: 0 done,
// 2 user error (the message says what to fix), 1 internal error.
#include <omp.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "trainer/core/error.h"
#include "trainer/infer/batch_inference.h"
#include "trainer/infer/checkpoint_model.h"
#include "trainer/infer/jpeg_inference.h"
#include "trainer/infer/predictions.h"
#include "trainer/train/device_setup.h"

namespace po = boost::program_options;

namespace {

constexpr const char* kUsage =
    "usage: resnet-infer --checkpoint CK [--classes DATASET] [--top K] [--json] IMAGE...\n"
    "       resnet-infer --checkpoint CK --input X.h5 --output Y.h5 [--batch N]\n"
    "\n"
    "Classifies JPEG images: each is resized and centre-cropped as the checkpoint's run prepared its\n"
    "validation images (data.val_resize, data.image_size, data.mean, data.std of its stored config), and its\n"
    "K most probable classes are printed with their softmax probabilities. Class names come from --classes,\n"
    "else from the checkpoint's /classes, else 'class N'.\n"
    "Files are decoded --batch at a time on --threads threads while the network runs the batch before;\n"
    "results are printed when all are classified (a bad file stops the run with nothing printed).\n"
    "With --input/--output: the HDF5 dataset 'images' (N, 3, H, W float32, already normalised) of X.h5\n"
    "becomes the dataset 'logits' (N, classes float32) of Y.h5, whose attributes name the checkpoint and step.\n"
    "--device cuda runs the network on a GPU with cuDNN, in bf16 unless --precision says otherwise (fp32 is\n"
    "the reference mode, closest to the CPU's logits).\n"
    "\n";

po::options_description options() {
  po::options_description o("options", 110);
  auto str = [](const char* name) { return po::value<std::string>()->value_name(name); };
  auto num = [](const char* name, int def) { return po::value<int>()->value_name(name)->default_value(def); };
  o.add_options()("help,h", "this text")("version", "print the version")(
      "checkpoint", str("CK"), "checkpoint file: resnet-train's (e.g. runs/x/checkpoint.h5) or import_torch.py's")(
      "classes", str("DATASET"), "dataset directory (resnet-data) whose manifest names the classes")(
      "top", num("K", 5), "classes printed per image")("json", "print one JSON object instead of text")(
      "input", str("X.h5"), "HDF5 file with the dataset 'images' (N, 3, H, W) float32, normalised")(
      "output", str("Y.h5"), "HDF5 file to write, with the dataset 'logits' (N, classes) float32")(
      "batch", num("N", 32), "images per forward pass")(
      "device", po::value<std::string>()->value_name("D")->default_value("cpu"), "cpu or cuda")(
      "gpu", num("N", 0), "cuda: the GPU's ordinal among the visible ones (CUDA_VISIBLE_DEVICES)")(
      "precision", po::value<std::string>()->value_name("P")->default_value("auto"),
      "cuda: bf16, fp16 or fp32 activations (auto: bf16); cpu: fp32 only")(
      "threads", num("N", 0), "threads for the CPU's compute and for decoding JPEG files (0: all cores)");
  return o;
}

// Results are printed once every image is classified: a bad file stops the
// run with nothing on stdout.
int classify_images(rn::CheckpointModel& model, const po::variables_map& vm, const std::vector<std::string>& paths) {
  const int top = vm["top"].as<int>();
  if (top < 1) throw rn::UserError("--top must be >= 1, got " + std::to_string(top));
  const std::vector<std::string> names =
      rn::class_names_for(model.info(), vm.count("classes") ? vm["classes"].as<std::string>() : "");
  const bool json = vm.count("json") > 0;
  const int threads = vm["threads"].as<int>();
  nlohmann::json results = nlohmann::json::array();
  std::string text;
  rn::run_jpeg_inference(model, paths, threads > 0 ? threads : omp_get_max_threads(),
                         [&](size_t i, const float* logits) {
                           const auto best = rn::top_k(logits, model.num_classes(), top);
                           if (json)
                             results.push_back(rn::to_json(paths[i], best, names));
                           else
                             text += rn::format_text(paths[i], best, names);
                         });
  const rn::CheckpointInfo& ck = model.info();
  if (!json) {
    std::cout << text << std::flush;
    return 0;
  }
  std::cout << nlohmann::json{{"checkpoint", ck.path},
                              {"arch", ck.arch},
                              {"step", ck.state.step},
                              {"image_size", model.preprocessing().out_size},
                              {"images", results}}
                   .dump()
            << std::endl;
  return 0;
}

// --device, --gpu, --precision and --threads as backend options.
rn::BackendOptions device_options(const po::variables_map& vm) {
  rn::BackendOptions o;
  o.device = vm["device"].as<std::string>();
  if (o.device != "cpu" && o.device != "cuda")
    throw rn::UserError("--device must be cpu or cuda, got '" + o.device + "'");
  o.threads = vm["threads"].as<int>();
  if (o.threads < 0) throw rn::UserError("--threads must be >= 0, got " + std::to_string(o.threads));
  o.cuda_device = vm["gpu"].as<int>();
  if (o.cuda_device < 0) throw rn::UserError("--gpu must be >= 0, got " + std::to_string(o.cuda_device));
  const std::string p = vm["precision"].as<std::string>();
  if (!rn::resolve_precision(p, o.device, &o.precision))
    throw rn::UserError("--precision must be auto, fp32, bf16 or fp16, got '" + p + "'");
  if (o.device == "cpu" && o.precision != rn::DType::kF32)
    throw rn::UserError("--precision " + p + " needs --device cuda; the CPU computes in fp32 (leave --precision out)");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const po::options_description opts = options();
    po::options_description hidden;
    hidden.add_options()("image", po::value<std::vector<std::string>>());
    po::options_description all;
    all.add(opts).add(hidden);
    po::positional_options_description positional;
    positional.add("image", -1);
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << kUsage << opts << "\nexit codes: 0 done, 2 user error, 1 internal error\n";
      return 0;
    }
    if (vm.count("version")) {
      std::printf("resnet-infer %s\n", RN_VERSION);
      return 0;
    }
    const auto images = vm.count("image") ? vm["image"].as<std::vector<std::string>>() : std::vector<std::string>{};
    const bool batch_mode = vm.count("input") || vm.count("output");
    if (!vm.count("checkpoint")) throw rn::UserError("missing --checkpoint CK (see resnet-infer --help)");
    if (batch_mode && !(vm.count("input") && vm.count("output")))
      throw rn::UserError("--input and --output go together: give both (see resnet-infer --help)");
    if (batch_mode && !images.empty())
      throw rn::UserError("give either IMAGE files or --input/--output, not both (see resnet-infer --help)");
    if (!batch_mode && images.empty())
      throw rn::UserError(
          "nothing to classify: give JPEG files, or --input X.h5 --output Y.h5 (see resnet-infer --help)");
    const int batch = vm["batch"].as<int>();
    if (batch < 1) throw rn::UserError("--batch must be >= 1, got " + std::to_string(batch));
    const rn::BackendOptions device = device_options(vm);

    rn::CheckpointModel model(vm["checkpoint"].as<std::string>(), batch, device);
    if (!batch_mode) return classify_images(model, vm, images);
    const std::string out = vm["output"].as<std::string>();
    const rn::BatchInferenceResult r = rn::run_batch_inference(model, vm["input"].as<std::string>(), out);
    std::fprintf(stderr, "resnet-infer: %lld images %lldx%lld -> %s (logits, %lld classes) in %.2f s on %s\n",
                 static_cast<long long>(r.images), static_cast<long long>(r.height), static_cast<long long>(r.width),
                 out.c_str(), static_cast<long long>(model.num_classes()), r.seconds,
                 model.backend().describe().c_str());
    return 0;
  } catch (const po::error& e) {
    std::fprintf(stderr, "resnet-infer: error: %s (see resnet-infer --help)\n", e.what());
    return 2;
  } catch (const rn::UserError& e) {
    std::fprintf(stderr, "resnet-infer: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "resnet-infer: internal error: %s\n", e.what());
    return 1;
  }
}
