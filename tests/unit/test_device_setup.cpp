// Which device a rank computes on (trainer/train/device_setup.h): the local
// rank its launcher announces before MPI_Init, the binding that uses it,
// and the CPU choice.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "trainer/train/device_setup.h"

namespace rn {
namespace {

// Sets the launcher variables for one test and restores them after.
class LauncherEnv {
 public:
  LauncherEnv(std::initializer_list<std::pair<const char*, const char*>> set) {
    for (const char* name : kNames) {
      const char* v = std::getenv(name);
      saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
      unsetenv(name);
    }
    for (const auto& [name, value] : set) setenv(name, value, 1);
  }
  ~LauncherEnv() {
    for (const auto& [name, v] : saved_)
      if (v)
        setenv(name.c_str(), v->c_str(), 1);
      else
        unsetenv(name.c_str());
  }

 private:
  static constexpr const char* kNames[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
  std::map<std::string, std::optional<std::string>> saved_;
};

TEST(LauncherLocalRank, OpenMpiFirstThenMpichThenSlurm) {
  {
    LauncherEnv env({});
    EXPECT_EQ(launcher_local_rank(), -1);
  }
  {
    LauncherEnv env({{"SLURM_LOCALID", "3"}});
    EXPECT_EQ(launcher_local_rank(), 3);
  }
  {
    LauncherEnv env({{"SLURM_LOCALID", "0"}, {"MPI_LOCALRANKID", "2"}});
    EXPECT_EQ(launcher_local_rank(), 2);
  }
  {  // mpirun inside a Slurm job: every rank inherits its daemon's SLURM_LOCALID 0
    LauncherEnv env({{"SLURM_LOCALID", "0"}, {"MPI_LOCALRANKID", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "5"}});
    EXPECT_EQ(launcher_local_rank(), 5);
  }
  {  // empty means unset
    LauncherEnv env({{"OMPI_COMM_WORLD_LOCAL_RANK", ""}, {"SLURM_LOCALID", "1"}});
    EXPECT_EQ(launcher_local_rank(), 1);
  }
}

TEST(LauncherLocalRank, GarbageIsNoAnswer) {
  for (const char* bad : {"x", "1x", "-1", "2.5", "99999999999"}) {
    LauncherEnv env({{"OMPI_COMM_WORLD_LOCAL_RANK", bad}, {"SLURM_LOCALID", "1"}});
    EXPECT_EQ(launcher_local_rank(), -1) << "'" << bad << "'";
  }
}

TEST(BindGpuBeforeMpi, NothingForTheCpuAndNoErrorBeforeMpi) {
  LauncherEnv env({{"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  Config c;
  c.train.device = "cpu";
  EXPECT_EQ(bind_gpu_before_mpi(c), -1);
  // Whatever the machine has, binding never throws: a missing GPU is
  // reported later by the backend, on every rank alike.
  c.train.device = "cuda";
  EXPECT_NO_THROW(bind_gpu_before_mpi(c));
}

TEST(ChooseDevice, CpuThreadsAndPrecision) {
  Config c;
  c.train.device = "cpu";
  c.train.threads = 4;
  c.train.precision = "auto";
  const DeviceChoice d = choose_device(c, RankPlacement{1, 2});
  EXPECT_EQ(d.options.device, "cpu");
  EXPECT_EQ(d.options.threads, 4);
  EXPECT_EQ(d.options.precision, DType::kF32);
  EXPECT_TRUE(d.note.empty());
  DType t{};
  ASSERT_TRUE(resolve_precision("auto", "cuda", &t));
  EXPECT_EQ(t, DType::kBF16);
  EXPECT_FALSE(resolve_precision("fp8", "cuda", &t));
}

}  // namespace
}  // namespace rn
