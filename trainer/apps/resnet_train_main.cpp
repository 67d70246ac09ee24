// resnet-train: train a ResNet from a config file plus overrides.
// Exit codes: 0 done, 2 user error (message says what to fix), 1 internal
// error, 3 communication failure (a collective timed out), 75 stopped early
// by SIGINT/SIGTERM/SIGUSR1 after saving a checkpoint (EX_TEMPFAIL: run again
// with --resume auto to continue; launch/slurm/train.sbatch requeues on it).
//
// Started by mpirun/mpiexec or srun, every rank runs this main and they
// train data-parallel; started plainly it is one process without MPI.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/mpi_world.h"
#include "trainer/checkpoint/checkpoint_reader.h"
#include "trainer/config/config.h"
#include "trainer/core/error.h"
#include "trainer/model/arch.h"
#include "trainer/train/trainer.h"

namespace {

// True when an MPI launcher started us (Open MPI's mpirun, or a PMI/PMIx
// server such as srun --mpi=pmix). A plain start skips MPI altogether, so the
// demo and login-node smoke tests need no MPI runtime.
bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

std::unique_ptr<rn::comm::MpiSession> g_mpi;

constexpr int kExitResumable = 75;  // EX_TEMPFAIL from sysexits.h

// With several ranks an error must take the whole job down (MPI_Abort),
// not leave the others waiting in a collective.
int fail(const std::exception& e, int code) {
  if (g_mpi && g_mpi->world().size > 1 && !dynamic_cast<const rn::AgreedError*>(&e)) rn::comm::abort_job_on(e);
  const std::string who = g_mpi ? "resnet-train[rank " + std::to_string(g_mpi->world().rank) + "]" : "resnet-train";
  std::fprintf(stderr, "%s: %s%s\n", who.c_str(), code == 2 ? "error: " : "internal error: ", e.what());
  g_mpi.reset();  // an agreed error: every rank gets here and shuts MPI down together
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    rn::CliRequest req = rn::parse_command_line(argc, argv);
    // `--resume PATH` without --config continues with the checkpoint's own
    // configuration (command-line overrides still apply).
    const std::string& resume = req.config.checkpoint.resume;
    if ((req.action == rn::CliAction::kTrain || req.action == rn::CliAction::kEval) && req.config.config_file.empty() &&
        !resume.empty() && resume != "auto") {
      const rn::CheckpointInfo ck = rn::read_checkpoint_info(resume);
      req = rn::parse_command_line(argc, argv, ck.state.config_ini, "the configuration stored in " + resume);
    }
    switch (req.action) {
      case rn::CliAction::kHelp:
        std::fputs(req.help_text.c_str(), stdout);
        return 0;
      case rn::CliAction::kVersion:
        std::printf("resnet-train %s\n", RN_VERSION);
        return 0;
      case rn::CliAction::kSummary: {
        // `--summary --model.arch=resnet152` describes the ImageNet model:
        // classes and input size default to the architecture's own.
        rn::Config c = req.config;
        rn::ArchSpec arch;
        if (rn::lookup_arch(c.model.arch, &arch)) {
          if (!req.given_keys.count("model.num_classes")) c.model.num_classes = arch.default_classes;
          if (!req.given_keys.count("data.image_size")) c.data.image_size = arch.default_image_size;
        }
        rn::print_summary(c);
        return 0;
      }
      case rn::CliAction::kTrain:
      case rn::CliAction::kEval:
        break;
    }
    std::unique_ptr<rn::comm::Communicator> world;
    int early_gpu = -1;
    if (launched_by_mpi()) {
      early_gpu = rn::bind_gpu_before_mpi(req.config);
      g_mpi = std::make_unique<rn::comm::MpiSession>(&argc, &argv);
      world = std::make_unique<rn::comm::Communicator>(MPI_COMM_WORLD, req.config.comm.timeout);
    }
    rn::RankPlacement where;
    if (g_mpi) where = {g_mpi->world().local_rank, g_mpi->world().local_size, early_gpu};
    if (req.action == rn::CliAction::kEval) {
      rn::evaluate_checkpoint(req.config, world.get(), where);
      world.reset();
      g_mpi.reset();
      return 0;
    }
    const rn::TrainResult r = rn::run_training(req.config, world.get(), where);
    world.reset();
    g_mpi.reset();
    return r.interrupted ? kExitResumable : 0;
  } catch (const rn::UserError& e) {
    return fail(e, 2);
  } catch (const std::exception& e) {
    return fail(e, 1);
  }
}
