#!/usr/bin/env bash
# The test command of the README (and of CI): install, configure, build,
# run the whole suite, print ctest's summary. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$(nproc)"
cd "$BUILD"
# OMP_NUM_THREADS is set per test (2); -j2 matches CI's two cores.
ctest -j 2 --output-on-failure --timeout 600
