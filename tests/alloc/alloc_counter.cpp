#include "tests/alloc/alloc_counter.h"

#include <cxxabi.h>
#include <errno.h>
#include <execinfo.h>
#include <fmt/format.h>
#include <link.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iterator>

// glibc's own allocator under its internal names (exported by libc.so.6).
extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* __libc_valloc(size_t);
void* __libc_pvalloc(size_t);
}

namespace rn::alloc_test {
namespace {

std::atomic<bool> g_armed{false};
std::atomic<uint64_t> g_counted{0};

constexpr int kKept = 6, kDepth = 40;
struct Trace {
  void* frames[kDepth];
  int depth = 0;
  size_t bytes = 0;
};
Trace g_traces[kKept];
std::atomic<int> g_kept{0};

// The libraries whose own allocations are reported apart, by file name.
struct Library {
  const char* name;
  const char* files[5];
};
constexpr Library kLibraries[] = {
    {"oneDNN", {"libdnnl"}},
    {"Open MPI", {"libmpi", "libopen-pal", "libopen-rte", "/openmpi/", "libpmix"}},
    {"CUDA libraries", {"libcudnn", "libcublas", "libcudart", "libcuda.so", "libnccl"}},
    {"HDF5", {"libhdf5"}},
    {"libjpeg-turbo", {"libturbojpeg", "libjpeg"}},
    {"OpenCV", {"libopencv"}},
};
constexpr int kNumLibraries = int(std::size(kLibraries));
std::atomic<uint64_t> g_in_library[kNumLibraries];

// The executable segments of those libraries (found when a watch starts).
struct CodeRange {
  uintptr_t begin = 0, end = 0;
  int library = 0;
};
constexpr int kMaxRanges = 64;
CodeRange g_ranges[kMaxRanges];
int g_num_ranges = 0;

int find_libraries(dl_phdr_info* info, size_t, void*) {
  if (!info->dlpi_name) return 0;
  for (int l = 0; l < kNumLibraries; ++l)
    for (const char* f : kLibraries[l].files) {
      if (!f || !std::strstr(info->dlpi_name, f)) continue;
      for (int i = 0; i < info->dlpi_phnum && g_num_ranges < kMaxRanges; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
        const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
        g_ranges[g_num_ranges++] = CodeRange{begin, begin + ph.p_memsz, l};
      }
      return 0;
    }
  return 0;
}

// The library of the innermost frame inside one, or -1.
int library_of(void* const* frames, int depth) {
  for (int f = 0; f < depth; ++f) {
    const auto a = reinterpret_cast<uintptr_t>(frames[f]);
    for (int r = 0; r < g_num_ranges; ++r)
      if (a >= g_ranges[r].begin && a < g_ranges[r].end) return g_ranges[r].library;
  }
  return -1;
}

// backtrace() may itself allocate (on its first call): not counted twice.
thread_local bool t_unwinding = false;

void note(size_t bytes) {
  if (!g_armed.load(std::memory_order_relaxed) || t_unwinding) return;
  t_unwinding = true;
  void* frames[kDepth];
  const int depth = backtrace(frames, kDepth);
  const int library = library_of(frames, depth);
  if (library >= 0) {
    g_in_library[library].fetch_add(1, std::memory_order_relaxed);
  } else {
    g_counted.fetch_add(1, std::memory_order_relaxed);
    const int i = g_kept.fetch_add(1, std::memory_order_relaxed);
    if (i < kKept) {
      std::copy(frames, frames + depth, g_traces[i].frames);
      g_traces[i].depth = depth;
      g_traces[i].bytes = bytes;
    }
  }
  t_unwinding = false;
}

// "binary(mangled+0x12) [0x...]" -> the demangled function name, else the line.
std::string frame_name(const char* line) {
  const char* open = std::strchr(line, '(');
  const char* plus = open ? std::strchr(open, '+') : nullptr;
  if (!open || !plus || plus == open + 1) return line;
  const std::string mangled(open + 1, plus);
  int status = 0;
  char* name = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : mangled;
  std::free(name);
  return out;
}

}  // namespace

AllocationWatch::AllocationWatch() {
  void* warm[2];
  (void)backtrace(warm, 2);  // loads the unwinder (libgcc) before counting
  g_num_ranges = 0;
  dl_iterate_phdr(find_libraries, nullptr);
  g_kept.store(0);
  g_counted.store(0);
  for (auto& n : g_in_library) n.store(0);
  g_armed.store(true);
}

void AllocationWatch::stop() { g_armed.store(false); }

uint64_t AllocationWatch::count() const { return g_counted.load(); }

std::string AllocationWatch::libraries() const {
  std::string out;
  for (int l = 0; l < kNumLibraries; ++l)
    if (const uint64_t n = g_in_library[l].load())
      out += fmt::format("{}{} {}", out.empty() ? "" : ", ", kLibraries[l].name, n);
  return out.empty() ? "none" : out;
}

std::string AllocationWatch::where() const {
  std::string out;
  const int kept = std::min(g_kept.load(), kKept);
  for (int i = 0; i < kept; ++i) {
    const Trace& t = g_traces[i];
    out += fmt::format("allocation {} ({} bytes):\n", i + 1, t.bytes);
    char** lines = backtrace_symbols(t.frames, t.depth);
    // Frame 0 is note(), 1 the interposed allocation function.
    for (int f = 2; lines && f < t.depth; ++f) {
      const std::string name = frame_name(lines[f]);
      if (name.starts_with("testing::")) break;  // GoogleTest's frames below the test body
      out += "    " + name + "\n";
    }
    std::free(lines);
  }
  return out;
}

}  // namespace rn::alloc_test

// --- the interposed allocation functions ---
using rn::alloc_test::note;

extern "C" {

void* malloc(size_t n) {
  note(n);
  return __libc_malloc(n);
}

void free(void* p) { __libc_free(p); }

void* calloc(size_t n, size_t size) {
  note(n * size);
  return __libc_calloc(n, size);
}

void* realloc(void* p, size_t n) {
  note(n);
  return __libc_realloc(p, n);
}

void* memalign(size_t align, size_t n) {
  note(n);
  return __libc_memalign(align, n);
}

void* aligned_alloc(size_t align, size_t n) {
  note(n);
  return __libc_memalign(align, n);
}

int posix_memalign(void** out, size_t align, size_t n) {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  note(n);
  void* p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

void* valloc(size_t n) {
  note(n);
  return __libc_valloc(n);
}

void* pvalloc(size_t n) {
  note(n);
  return __libc_pvalloc(n);
}

}  // extern "C"
