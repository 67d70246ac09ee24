// The benchmarks of resnet-bench, one function and one option set each.
#pragma once

#include <boost/program_options.hpp>

namespace rn::bench {

boost::program_options::options_description train_options();
int train(const boost::program_options::variables_map& vm);

boost::program_options::options_description loader_options();
int loader(const boost::program_options::variables_map& vm);

boost::program_options::options_description allreduce_options();
// Runs under mpirun/mpiexec (MPI is initialised inside).
int allreduce(const boost::program_options::variables_map& vm, int* argc, char*** argv);

}  // namespace rn::bench
