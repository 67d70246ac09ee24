// cuBLAS is loaded when a GPU backend is made, not linked (cublas_api.h).
// These run on every machine: loading the library and resolving its
// functions needs no GPU. The program must not link it, which is what keeps
// it out of CPU runs.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "trainer/backend/cuda/cublas_api.h"
#include "trainer/core/error.h"

namespace rn::cuda {
namespace {

// What the dynamic loader maps at this program's start (ldd: the libraries
// it links and theirs).
std::string linked_libraries() {
  std::string out;
  // This test's executable (/proc/self/exe would be ldd's own in the shell).
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  FILE* p = popen(("ldd '" + exe + "' 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  return out;
}

TEST(CublasApi, IsNotLinkedAndLoadsOnFirstUseWithEveryFunction) {
  const std::string libs = linked_libraries();
  ASSERT_NE(libs.find("libcudnn"), std::string::npos) << "ldd did not list the program's libraries: " << libs;
  EXPECT_EQ(libs.find("libcublas"), std::string::npos) << "cuBLAS is linked again: every CPU run pays for it\n" << libs;
  const CublasApi& api = cublas();
  EXPECT_NE(api.create, nullptr);
  EXPECT_NE(api.destroy, nullptr);
  EXPECT_NE(api.set_stream, nullptr);
  EXPECT_NE(api.set_math_mode, nullptr);
  EXPECT_NE(api.set_pointer_mode, nullptr);
  EXPECT_NE(api.gemm_ex, nullptr);
  EXPECT_EQ(&cublas(), &api) << "loaded once";
  EXPECT_EQ(cublas_library_name(), "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR));
}

TEST(CublasApi, AMissingOrForeignLibraryIsAUserErrorNamingIt) {
  try {
    load_cublas("libcublas-not-here.so.1");
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("libcublas-not-here.so.1"), std::string::npos) << m;
    EXPECT_NE(m.find("LD_LIBRARY_PATH"), std::string::npos) << m;
  }
  try {
    load_cublas("libz.so.1");  // loads, but is not cuBLAS
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("libz.so.1 has no function cublasCreate_v2"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace rn::cuda
