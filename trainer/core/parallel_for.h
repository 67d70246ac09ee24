// Loops over [0, n) on the OpenMP threads, for the host code's own
// element-wise work (the oneDNN backend's helpers, synthetic data).
//
// With one thread (train.threads = 1: one core per rank) the loop runs
// inline: libgomp allocates and frees a team for every parallel region of
// a single thread, which would put heap allocations in the step loop.
#pragma once

#include <omp.h>

#include <cstdint>

namespace rn {

// f(i) for every i in [0, n); iterations must be independent.
template <class F>
void parallel_for(int64_t n, F&& f) {
  if (omp_get_max_threads() <= 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// How many i in [0, n) satisfy pred(i).
template <class P>
int64_t parallel_count(int64_t n, P&& pred) {
  int64_t hits = 0;
  if (omp_get_max_threads() <= 1) {
    for (int64_t i = 0; i < n; ++i) hits += pred(i) ? 1 : 0;
    return hits;
  }
#pragma omp parallel for simd schedule(static) reduction(+ : hits)
  for (int64_t i = 0; i < n; ++i) hits += pred(i) ? 1 : 0;
  return hits;
}

}  // namespace rn
