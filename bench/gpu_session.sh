#!/usr/bin/env bash
# bench/gpu_session.sh OUT_DIR [SECTION...]: what a lent GPU machine should
# run. Needs resnet-train, resnet-bench, rn_gpu_tests, rn_gpu_mpi_tests,
# rn_alloc_tests and mpirun on PATH (a build's, or a packed copy with its libraries where the
# GPU machine lacks Open MPI, HDF5 and oneDNN), python3 with PyTorch, and the
# PyTorch peer script at $TORCH_PEER (default .kit/torch_gpu_bench.py).
#
# Sections (default: all, in this order):
#   facts        the card, the libraries our binaries found, PyTorch's versions
#   tests        rn_gpu_tests, rn_gpu_mpi_tests at 2 and 3 ranks, and the
#                GPU step's allocation test (rn_alloc_tests)
#   dp           two ranks training on the one GPU with the ring all-reduce
#                (and NCCL where there is a GPU per rank)
#   sanitize     compute-sanitizer memcheck over the own kernels' tests and one
#                whole ResNet step (out-of-bounds and misaligned accesses)
#   bench50      matmul rate, then resnet50 b256: ours (heuristic, find) and
#                PyTorch eager / torch.compile
#   bench152     the same for resnet152 b128
# A device command may run 10 minutes: facts, tests, dp and sanitize are
# meant for one (in that order, the least needed last), each bench section
# for another. Every step has its own time limit and writes to its
# own file in OUT_DIR (at most 7 files, within what a run brings back), and a
# failing or timed-out step does not stop the rest.
set -uo pipefail
out=${1:?usage: gpu_session.sh OUT_DIR [facts tests dp sanitize bench50 bench152]}
shift
sections=${*:-facts tests dp sanitize bench50 bench152}
mkdir -p "$out"
peer=${TORCH_PEER:-.kit/torch_gpu_bench.py}
py=${PYTHON:-python3}
log() { echo "== $* ($(date -u +%H:%M:%S))"; }
# limit SECONDS FILE CMD...: runs CMD with stdout+stderr appended to FILE,
# then appends its exit status (124: killed at the limit).
limit() {
  local s=$1 f=$2
  shift 2
  timeout --kill-after=10 "$s" "$@" >>"$f" 2>&1
  echo "[rc=$? after $SECONDS s: $*]" >>"$f"
}

section_facts() {
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    ldd "$(command -v resnet-train)" | grep -E 'cudnn|cublas|nccl|cudart|not found'
    # cuBLAS is not linked: the backend dlopens libcublas.so.13 from these.
    for d in ${LD_LIBRARY_PATH//:/ }; do ls "$d"/libcublas.so.* 2>/dev/null; done
    "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
    ls "$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
  } >"$out/facts.txt" 2>&1
}

# Test binaries by full path: gtest's death tests re-execute argv[0], which
# execv does not look up on PATH.
gpu_tests=$(command -v rn_gpu_tests || echo rn_gpu_tests)
gpu_mpi_tests=$(command -v rn_gpu_mpi_tests || echo rn_gpu_mpi_tests)
alloc_tests=$(command -v rn_alloc_tests || echo rn_alloc_tests)

section_tests() {
  local f=$out/gpu_tests.txt
  limit 300 "$f" "$gpu_tests" --gtest_brief=1 --gtest_color=no
  for np in 2 3; do
    limit 120 "$f" mpirun --oversubscribe -np $np "$gpu_mpi_tests" --gtest_brief=1 --gtest_color=no
  done
  limit 120 "$f" mpirun -np 1 "$alloc_tests" --gtest_color=no --gtest_filter='*Gpu*:-*DataParallel*'
  limit 120 "$f" mpirun --oversubscribe -np 2 "$alloc_tests" --gtest_color=no --gtest_filter='*GpuDataParallel*'
}

section_sanitize() {
  local f=$out/sanitizer.txt
  local own='*GpuElementwise*:*GpuLossOptim*:*GpuDataMovement*:*GpuActivationStorage*:*GpuGlobalAvgPool*'
  own+=':*GpuMaxPool*:*GpuLinear*'
  local cs
  cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  limit 150 "$f" "$cs" --tool memcheck --error-exitcode 3 "$gpu_tests" --gtest_brief=1 \
    --gtest_color=no --gtest_filter="$own"
  limit 90 "$f" "$cs" --tool memcheck --error-exitcode 3 "$gpu_tests" --gtest_brief=1 \
    --gtest_color=no --gtest_filter='*GpuResNetStep*bf16_CifarResnet20A*'
}

section_dp() {
  local f=$out/dp.txt gpus
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  for ar in ring nccl; do
    if [[ $ar == nccl && $gpus -lt 2 ]]; then  # resnet-train would exit 2 saying so
      echo "== --comm.allreduce=nccl skipped: NCCL needs a GPU per rank, $gpus visible" >>"$f"
      continue
    fi
    echo "== --comm.allreduce=$ar" >>"$f"
    limit 120 "$f" mpirun --oversubscribe -np 2 resnet-train --device cuda --model.arch=resnet18 --data.image_size=64 \
      --train.batch_size=32 --train.max_steps=30 --train.log_every=10 --comm.allreduce=$ar \
      --comm.check_weights_every=10 --train.output_dir=/tmp/rn_gpu_dp_$ar
  done
}

# The card's bf16 matrix rate, once per run, for model FLOP utilisation.
peak=
matmul_rate() {
  [[ -n $peak ]] && return
  timeout 60 "$py" - >"$out/matmul.json" 2>&1 <<'PY'
import json, torch
n = 8192
a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16); b = torch.randn_like(a)
for _ in range(5): a @ b
torch.cuda.synchronize(); s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
s.record()
for _ in range(50): a @ b
e.record(); torch.cuda.synchronize()
print(json.dumps({"bf16_matmul_tflops": 2 * n**3 * 50 / (s.elapsed_time(e) / 1e3) / 1e12, "n": n}))
PY
  peak=$("$py" -c "import json;print(json.load(open('$out/matmul.json'))['bf16_matmul_tflops'])" 2>/dev/null || echo 0)
}

# bench MODEL BATCH: ours with each algorithm choice, then the peer, in the
# same run; one JSON line each in train_bench.jsonl, messages in .err.
bench() {
  matmul_rate
  local j=$out/train_bench.jsonl e=$out/train_bench.err
  for algo in heuristic find; do
    timeout --kill-after=10 150 resnet-bench train --device cuda --precision bf16 --conv-algo $algo --model "$1" \
      --batch "$2" --steps 30 --warmup 10 --peak-tflops "$peak" --json >>"$j" 2>>"$e"
    echo "[rc=$? ours $1 $2 $algo]" >>"$e"
  done
  timeout --kill-after=10 120 "$py" "$peer" "$1" "$2" --dtype bf16 --steps 30 >>"$j" 2>>"$e"
  echo "[rc=$? pytorch eager $1 $2]" >>"$e"
  timeout --kill-after=10 240 "$py" "$peer" "$1" "$2" --dtype bf16 --steps 30 --compile >>"$j" 2>>"$e"
  echo "[rc=$? pytorch compile $1 $2]" >>"$e"
}
section_bench50() { bench resnet50 256; }
section_bench152() { bench resnet152 128; }

for s in $sections; do
  if ! declare -F "section_$s" >/dev/null; then
    echo "unknown section '$s'; sections: facts tests dp sanitize bench50 bench152" >&2
    exit 2
  fi
done
for s in $sections; do
  log "$s"
  "section_$s"
done
log done
