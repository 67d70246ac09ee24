#!/usr/bin/env bash
# launch/local.sh: run resnet-train data-parallel on this machine with mpirun.
#
#   launch/local.sh -n RANKS [resnet-train args...]
#   launch/local.sh -n 2 --config configs/cifar-resnet20.cfg --train.output_dir=runs/c20
#
# Each rank gets k = physical cores / RANKS cores (at least 1): Open MPI binds
# it to k cores (`--map-by slot:PE=k --bind-to core`) and it runs k compute
# threads (OMP_NUM_THREADS=k and --train.threads=k unless the arguments set
# --train.threads). With more ranks than cores the ranks are not bound
# (`--bind-to none --oversubscribe`) and run one thread each.
#
# Environment: RN_TRAIN_BIN (default `resnet-train` on PATH, else
# build/bin/resnet-train next to this script's repository), MPIRUN (default
# mpirun), RN_MPIRUN_ARGS (extra mpirun arguments, split on spaces).
# As root (containers, CI) it adds Open MPI's run-as-root permission.
# The exit status is resnet-train's (75: stopped by a signal after saving a
# checkpoint; run again with --resume auto to continue).
set -euo pipefail

usage() { echo "usage: launch/local.sh -n RANKS [resnet-train args...]" >&2; exit 2; }

ranks=""
case ${1:-} in
  -n | -np) [[ $# -ge 2 ]] || usage; ranks=$2; shift 2 ;;
  -n[0-9]* ) ranks=${1#-n}; shift ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) usage ;;
esac
[[ $ranks =~ ^[1-9][0-9]*$ ]] || { echo "launch/local.sh: -n needs a positive number of ranks, not '$ranks'" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${RN_TRAIN_BIN:-$(command -v resnet-train || echo "$repo/build/bin/resnet-train")}
[[ -x $bin ]] || { echo "launch/local.sh: resnet-train not found at '$bin' (build it or set RN_TRAIN_BIN)" >&2; exit 2; }

# Physical cores this process may use (hardware threads of one core count once).
cores=$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l || true)
online=$(nproc)
[[ $cores -ge 1 && $cores -le $online ]] || cores=$online

mpi=("${MPIRUN:-mpirun}" -np "$ranks")
if ((ranks <= cores)); then
  k=$((cores / ranks))
  mpi+=(--map-by "slot:PE=$k" --bind-to core)
else
  k=1
  mpi+=(--bind-to none --oversubscribe)
fi
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS=$k
mpi+=(-x OMP_NUM_THREADS)
# shellcheck disable=SC2206  # RN_MPIRUN_ARGS is a space-separated list by design
[[ -n ${RN_MPIRUN_ARGS:-} ]] && mpi+=(${RN_MPIRUN_ARGS})

threads=(--train.threads="$k")
for a in "$@"; do
  [[ $a == --train.threads=* ]] && threads=()
done

echo "launch/local.sh: $ranks rank(s) x $k core(s) of $cores: ${mpi[*]} $bin $* ${threads[*]}" >&2
exec "${mpi[@]}" "$bin" "$@" "${threads[@]}"
