// resnet-bench allreduce: an nccl-tests-style sweep of the all-reduce over
// message sizes, under mpirun/mpiexec.
//
//   mpiexec -np 4 resnet-bench allreduce --algo ring --min-bytes 1K --max-bytes 256M
//
// Each size runs `warmup` untimed and `iters` timed in-place sums; the time
// is the slowest rank's mean. algbw = bytes / time; busbw = algbw * 2(N-1)/N,
// the per-link rate a bandwidth-optimal all-reduce needs, comparable across
// rank counts. #wrong: elements that differ from the exact sum in a separate
// checked run (inputs are small integers, exact in every dtype).
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench/benches.h"
#include "comm/allreduce.h"
#include "comm/communicator.h"
#include "comm/mpi_world.h"
#include "trainer/core/error.h"

namespace po = boost::program_options;

namespace rn::bench {
namespace {

// "1K", "256M", "1G", "4096" -> bytes (powers of 1024).
size_t parse_bytes(const std::string& s, const char* option) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (...) {
    throw UserError(fmt::format("--{} = '{}': expected a size such as 4096, 1K, 256M or 1G", option, s));
  }
  const std::string unit = s.substr(pos);
  double mult = 1;
  if (unit == "K" || unit == "k") mult = 1024.0;
  else if (unit == "M" || unit == "m") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "g") mult = 1024.0 * 1024 * 1024;
  else if (!unit.empty() && unit != "B") throw UserError(fmt::format("--{} = '{}': unknown unit '{}' (K, M, G)", option, s, unit));
  if (v < 0) throw UserError(fmt::format("--{} must be >= 0", option));
  return size_t(v * mult);
}

float input_value(size_t i, int rank) { return float(int((i * 31 + size_t(rank) * 17) % 13) - 6); }

}  // namespace

po::options_description allreduce_options() {
  po::options_description opts("resnet-bench allreduce options (run under mpirun/mpiexec)");
  opts.add_options()("help,h", "show this help")
      ("algo", po::value<std::string>()->default_value("ring"), "ring (ours) or mpi (MPI_Allreduce)")
      ("dtype", po::value<std::string>()->default_value("fp32"), "fp32, bf16 or fp16 (fp32 accumulation)")
      ("min-bytes", po::value<std::string>()->default_value("1K"), "smallest message (K/M/G suffixes)")
      ("max-bytes", po::value<std::string>()->default_value("256M"), "largest message")
      ("factor", po::value<int>()->default_value(4), "size multiplier between rows (>= 2)")
      ("iters", po::value<int>()->default_value(20), "timed iterations per size")
      ("warmup", po::value<int>()->default_value(3), "untimed iterations per size")
      ("segment-kb", po::value<int>()->default_value(256), "ring pipelining segment (KiB)")
      ("timeout", po::value<double>()->default_value(300), "seconds without progress before aborting")
      ("json", "print one JSON object (rank 0) instead of a table");
  return opts;
}

int allreduce(const po::variables_map& vm, int* argc, char*** argv) {
  comm::Algorithm algo;
  if (!comm::parse_algorithm(vm["algo"].as<std::string>(), &algo))
    throw UserError("--algo must be ring or mpi, not '" + vm["algo"].as<std::string>() + "'");
  comm::DType dtype;
  if (!comm::parse_dtype(vm["dtype"].as<std::string>(), &dtype))
    throw UserError("--dtype must be fp32, bf16 or fp16, not '" + vm["dtype"].as<std::string>() + "'");
  const size_t min_b = parse_bytes(vm["min-bytes"].as<std::string>(), "min-bytes");
  const size_t max_b = parse_bytes(vm["max-bytes"].as<std::string>(), "max-bytes");
  const int factor = vm["factor"].as<int>(), iters = vm["iters"].as<int>(), warmup = vm["warmup"].as<int>();
  if (factor < 2 || iters < 1 || warmup < 0 || max_b < min_b || vm["segment-kb"].as<int>() < 1)
    throw UserError("need --factor >= 2, --iters >= 1, --warmup >= 0, --segment-kb >= 1 and max-bytes >= min-bytes");

  comm::MpiSession mpi(argc, argv);
  comm::Communicator world(MPI_COMM_WORLD, vm["timeout"].as<double>());
  const int n = world.size(), rank = world.rank();
  const bool json = vm.count("json") > 0;
  auto ar = comm::make_allreducer(algo, world, size_t(vm["segment-kb"].as<int>()) * 1024);
  const size_t es = comm::dtype_size(dtype);
  const size_t max_count = max_b / es;
  ar->reserve(max_count, dtype);
  std::vector<char> buf(max_count * es);
  std::vector<float> ref(max_count);

  if (rank == 0 && !json) {
    fmt::print("# resnet-bench allreduce: {} ranks, algo {}, dtype {}, {} iters (+{} warm-up), in place, sum\n", n,
               comm::algorithm_name(algo), comm::dtype_name(dtype), iters, warmup);
    fmt::print("#{:>12} {:>12} {:>6} {:>12} {:>12} {:>12} {:>7}\n", "size(B)", "count", "type", "time(us)",
               "algbw(GB/s)", "busbw(GB/s)", "#wrong");
  }
  nlohmann::json rows = nlohmann::json::array();
  for (size_t bytes = std::max<size_t>(min_b, es); bytes <= max_b; bytes *= size_t(factor)) {
    const size_t count = bytes / es;
    // Checked run: exact integer sums.
    for (size_t i = 0; i < count; ++i) ref[i] = input_value(i, rank);
    comm::pack(dtype, ref.data(), buf.data(), count);
    ar->run(buf.data(), count, dtype, comm::ReduceOp::kSum, comm::WaitInfo{"benchmark all-reduce"});
    comm::unpack(dtype, buf.data(), ref.data(), count);
    int64_t wrong = 0;
    for (size_t i = 0; i < count; ++i) {
      float want = 0;
      for (int r = 0; r < n; ++r) want += input_value(i, r);
      wrong += ref[i] != want;
    }
    world.allreduce_max(&wrong, 1, "benchmark check");  // worst rank

    for (int i = 0; i < warmup; ++i)
      ar->run(buf.data(), count, dtype, comm::ReduceOp::kSum, comm::WaitInfo{"benchmark all-reduce"});
    world.barrier("benchmark barrier");
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i)
      ar->run(buf.data(), count, dtype, comm::ReduceOp::kSum, comm::WaitInfo{"benchmark all-reduce"});
    int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    world.allreduce_max(&ns, 1, "benchmark timing");  // the slowest rank decides
    const double secs = double(ns) * 1e-9 / iters;
    const double algbw = double(count * es) / secs / 1e9;
    const double busbw = algbw * 2.0 * (n - 1) / n;
    if (rank == 0) {
      if (json)
        rows.push_back({{"bytes", count * es}, {"count", count}, {"time_us", secs * 1e6}, {"algbw_gbs", algbw},
                        {"busbw_gbs", busbw}, {"wrong", wrong}});
      else
        fmt::print(" {:>12} {:>12} {:>6} {:>12.1f} {:>12.3f} {:>12.3f} {:>7}\n", count * es, count,
                   comm::dtype_name(dtype), secs * 1e6, algbw, busbw, wrong);
      std::fflush(stdout);
    }
    if (bytes > max_b / size_t(factor)) break;
  }
  if (rank == 0 && json)
    fmt::print("{}\n", nlohmann::json{{"bench", "allreduce"}, {"ranks", n}, {"algo", comm::algorithm_name(algo)},
                                      {"dtype", comm::dtype_name(dtype)}, {"iters", iters}, {"rows", rows}}
                           .dump());
  return 0;
}

}  // namespace rn::bench
