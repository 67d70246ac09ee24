// Counting heap allocations in the test process (rn_alloc_tests only).
//
// alloc_counter.cpp interposes glibc's malloc family (malloc, calloc,
// realloc, memalign, posix_memalign, aligned_alloc, valloc, pvalloc) in the
// test executable. Every shared library the process loads (libstdc++'s
// operator new, Open MPI, HDF5, CUDA, oneDNN) resolves malloc to it, so an
// AllocationWatch sees every allocation of every thread, not only C++ ones.
//
// Allocations made inside the compute and communication libraries are
// counted apart, per library, and reported, not failed on: what those do
// inside a call is theirs (oneDNN 2.6, Debian 12's, builds a hash map of
// the arguments and a scratchpad grantor inside every primitive execution,
// which no use of its API avoids; Open MPI may grow its buffer pool for an
// unexpected message). An allocation is a library's when a frame of its
// call stack lies in that library's code (its own threads' work included).
// Everything else, this project's code above all, is counted.
#pragma once

#include <cstdint>
#include <string>

namespace rn::alloc_test {

// Counts the allocations made from its construction to stop() (or its
// end) and keeps the call stacks of the first few counted ones, so that a
// failure says where they came from. One watch at a time; every allocation
// is unwound while one counts.
class AllocationWatch {
 public:
  AllocationWatch();
  ~AllocationWatch() { stop(); }
  AllocationWatch(const AllocationWatch&) = delete;
  AllocationWatch& operator=(const AllocationWatch&) = delete;

  // Stops counting (before reporting: a failure message allocates).
  void stop();
  // Allocations outside the libraries (see above).
  uint64_t count() const;
  // The libraries' allocations, e.g. "oneDNN 3051, Open MPI 1" ("none").
  std::string libraries() const;
  // The sizes and (demangled) call stacks of the first counted allocations.
  std::string where() const;
};

}  // namespace rn::alloc_test
