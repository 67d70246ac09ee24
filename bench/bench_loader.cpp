// resnet-bench loader: images/s of the HDF5 loader (read, decode, augment,
// normalise into batches) on one rank, the same work as torchvision's
// ImageFolder + transforms on the same JPEGs (the peer script). Counts source
// images (a 10-crop image makes 10 network inputs).
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench/benches.h"
#include "data/loader.h"
#include "trainer/core/error.h"

namespace po = boost::program_options;

namespace rn::bench {

po::options_description loader_options() {
  po::options_description o("resnet-bench loader: decode + augment throughput of one rank's loader");
  o.add_options()("help", "this text")("data", po::value<std::string>()->required(), "dataset directory (resnet-data)")(
      "threads", po::value<int>()->default_value(1), "decode/augment worker threads")(
      "augment", po::value<std::string>()->default_value("imagenet"),
      "imagenet (= inception: torchvision's RandomResizedCrop recipe) | scale | inception | center | tencrop | cifar")(
      "image-size", po::value<int>()->default_value(224), "output side, pixels")(
      "batch", po::value<int>()->default_value(64), "images per batch")(
      "prefetch", po::value<int>()->default_value(3), "batches decoded ahead")(
      "seconds", po::value<double>()->default_value(10), "measuring time after the first batch")(
      "json", "print one JSON object");
  return o;
}

int loader(const po::variables_map& vm) {
  data::LoaderOptions o;
  o.dir = vm["data"].as<std::string>();
  o.what = "--data";
  o.plan.batch_size = vm["batch"].as<int>();
  o.plan.train = true;
  const std::string aug = vm["augment"].as<std::string>();
  o.augment.kind = data::parse_augment_kind(aug == "imagenet" ? "inception" : aug, "--augment");
  o.augment.out_size = vm["image-size"].as<int>();
  o.augment.resize_size = int(o.augment.out_size / 0.875 + 0.5);
  o.threads = vm["threads"].as<int>();
  o.prefetch = vm["prefetch"].as<int>();
  const double seconds = vm["seconds"].as<double>();
  if (o.plan.batch_size < 1 || seconds <= 0) throw UserError("need --batch >= 1 and --seconds > 0");
  data::Loader l(o);
  l.start({0, 0});
  l.next();  // warm-up: threads started, first batch decoded
  int64_t images = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double secs = 0;
  while (secs < seconds) {
    images += l.next().n;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  l.stop();
  const double ips = double(images) / secs;
  if (vm.count("json")) {
    std::cout << nlohmann::json{{"engine", "resnet-hpc-" RN_VERSION}, {"augment", aug}, {"threads", o.threads},
                                {"batch", o.plan.batch_size}, {"image_size", o.augment.out_size},
                                {"images", images}, {"views_per_image", l.views()}, {"seconds", secs}, {"images_per_sec", ips},
                                {"images_per_sec_per_thread", ips / o.threads}, {"bad_samples", l.bad_samples()}}
                     .dump()
              << std::endl;
  } else {
    fmt::print("{:<10} {:>8} {:>6} {:>12} {:>18}\n", "augment", "threads", "batch", "images/s", "images/s/thread");
    fmt::print("{:<10} {:>8} {:>6} {:>12.1f} {:>18.1f}\n", aug, o.threads, o.plan.batch_size, ips, ips / o.threads);
  }
  return 0;
}

}  // namespace rn::bench
