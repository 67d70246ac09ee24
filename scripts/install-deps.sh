#!/usr/bin/env bash
# Installs every Debian 12 package the build, the tests and the demo need.
# The one place that lists packages (Singularity.def runs this script too).
# Idempotent; needs root (or sudo). Skips apt entirely when all are present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libopenmpi-dev openmpi-bin          # MPI ranks (comm/)
  libhdf5-dev                         # checkpoints and dataset shards
  libboost-program-options-dev        # INI configs + command-line overrides
  libdnnl-dev                         # oneDNN: the CPU backend
  libturbojpeg0-dev libjpeg-dev       # JPEG decode in the data pipeline (libjpeg-dev: the name Debian and Ubuntu share)
  libopencv-imgproc-dev               # image resize in augmentation and the converter
  libgtest-dev libgmock-dev           # unit tests
  libfmt-dev                          # formatting (fmt: C++20 std::format is not in GCC 12)
  nlohmann-json3-dev                  # metrics.jsonl and benchmark JSON
  python3-torch python3-torchvision python3-h5py  # tools/*_torch.py, the TorchParity tests, benchmark peers
  iproute2                            # tests/netns: ip, tc (network-namespace "hosts")
  slurm-wlm munge                     # tests/slurm: a one-node Slurm (srun --mpi=pmix: slurm-wlm-basic-plugins)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
