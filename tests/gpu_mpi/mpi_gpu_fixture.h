// The fixture of the multi-rank GPU tests (tests/gpu_mpi): a communicator
// over MPI_COMM_WORLD and this rank's GPU (local rank % visible devices, so
// ranks may share one). Every rank agrees on whether there is a GPU before a
// test calls collectives: where any rank sees none, all of them skip saying
// why.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "trainer/backend/cuda/cuda_check.h"

namespace rn::gpu_test {

// This process's rank among those on its node.
inline int local_rank(MPI_Comm world) {
  int rank = 0, local = 0;
  MPI_Comm_rank(world, &rank);
  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  return local;
}

class MpiGpuTest : public testing::Test {
 protected:
  void SetUp() override {
    comm_ = std::make_unique<comm::Communicator>(MPI_COMM_WORLD, 120.0);
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    std::string why = e == cudaSuccess ? "cudaGetDeviceCount found 0 devices" : cudaGetErrorString(e);
    if (e != cudaSuccess) {
      count = 0;
      cudaGetLastError();
    }
    int64_t neg_min = -int64_t(count);  // max over ranks of -count: 0 when any rank has none
    comm_->allreduce_max(&neg_min, 1, "GPU count");
    if (neg_min == 0)
      GTEST_SKIP() << "no CUDA device: " << (count == 0 ? why : "another rank sees none")
                   << "; the multi-rank GPU tests need one";
    device_ = local_rank(MPI_COMM_WORLD) % count;
    CUDA_CHECK(cudaSetDevice(device_));
  }

  std::unique_ptr<comm::Communicator> comm_;
  int device_ = 0;
};

}  // namespace rn::gpu_test
