// resnet-bench: measures the engine and the communication layer; prints a
// table or one JSON object.
//
//   resnet-bench train --model resnet50 --batch 16 --image-size 224 --steps 5 [--json]
//   resnet-bench loader --data DIR --threads 2 --augment imagenet [--json]
//   mpiexec -np 4 resnet-bench allreduce --algo ring --min-bytes 1K --max-bytes 256M [--json]
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "bench/benches.h"
#include "trainer/core/error.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  const std::string usage = "usage: resnet-bench train|loader|allreduce [options]   (resnet-bench BENCH --help)\n";
  try {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
      std::cout << usage << "\n" << rn::bench::train_options() << "\n" << rn::bench::loader_options() << "\n"
                << rn::bench::allreduce_options();
      return argc < 2 ? 2 : 0;
    }
    const std::string bench = argv[1];
    if (bench != "train" && bench != "loader" && bench != "allreduce")
      throw rn::UserError("unknown benchmark '" + bench + "'; available: train, loader, allreduce");
    const po::options_description opts = bench == "train"    ? rn::bench::train_options()
                                         : bench == "loader" ? rn::bench::loader_options()
                                                             : rn::bench::allreduce_options();
    po::variables_map vm;
    po::store(po::parse_command_line(argc - 1, argv + 1, opts), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << usage << "\n" << opts;
      return 0;
    }
    if (bench == "train") return rn::bench::train(vm);
    if (bench == "loader") return rn::bench::loader(vm);
    return rn::bench::allreduce(vm, &argc, &argv);
  } catch (const po::error& e) {
    std::fprintf(stderr, "resnet-bench: error: %s (see resnet-bench --help)\n", e.what());
    return 2;
  } catch (const rn::UserError& e) {
    std::fprintf(stderr, "resnet-bench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "resnet-bench: internal error: %s\n", e.what());
    return 1;
  }
}
