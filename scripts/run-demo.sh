#!/usr/bin/env bash
# The demo command of the README: install, build, and train the built-in
# demo (cifar-resnet8 on synthetic data, about a minute on 2 cores). Leaves
# runs/demo/{train.log, metrics.jsonl, config.ini, checkpoint.h5}.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRESNET_BUILD_TESTS=OFF
cmake --build "$BUILD" -j "$(nproc)" --target resnet-train
exec "$BUILD/bin/resnet-train" --config configs/demo.cfg "$@"
