#!/usr/bin/env bash
# bench/gpu_session.sh OUT_DIR: everything a lent GPU machine should run, in
# one command (machines are short-lived): facts about the card and the
# libraries, the GPU test suites, our training step against the PyTorch peer
# (eager and torch.compile) on the same card, the card's bf16 matrix rate for
# MFU, and two ranks sharing the GPU. Needs the kit (README "GPU machine")
# sourced first, and the PyTorch peer script at $TORCH_PEER. Each section
# writes its own file in OUT_DIR and a failing section does not stop the rest.
set -uo pipefail
out=${1:?usage: gpu_session.sh OUT_DIR}
mkdir -p "$out"
peer=${TORCH_PEER:-.kit/torch_gpu_bench.py}
py=${PYTHON:-python3}
log() { echo "== $* ($(date -u +%H:%M:%S))"; }

log facts
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  ldd "$(command -v resnet-train)" | grep -E 'cudnn|cublas|nccl|cudart|not found'
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
} >"$out/facts.txt" 2>&1

log gpu tests
rn_gpu_tests --gtest_brief=1 >"$out/gpu_tests.txt" 2>&1; echo "rc=$?" >>"$out/gpu_tests.txt"
for np in 2 3; do
  mpirun -np $np rn_gpu_mpi_tests --gtest_brief=1 >>"$out/gpu_tests.txt" 2>&1
  echo "gpu mpi np=$np rc=$?" >>"$out/gpu_tests.txt"
done

log matmul rate
"$py" - >"$out/matmul.json" 2>&1 <<'PY'
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

log training step: ours vs PyTorch
: >"$out/train_bench.jsonl"
for mb in "resnet50 256" "resnet152 128"; do
  set -- $mb
  for algo in heuristic find; do
    resnet-bench train --device cuda --precision bf16 --conv-algo $algo --model "$1" --batch "$2" --steps 30 \
      --warmup 10 --peak-tflops "$peak" --json >>"$out/train_bench.jsonl" 2>>"$out/train_bench.err"
  done
  "$py" "$peer" "$1" "$2" --dtype bf16 --steps 30 >>"$out/train_bench.jsonl" 2>>"$out/train_bench.err"
  "$py" "$peer" "$1" "$2" --dtype bf16 --steps 30 --compile >>"$out/train_bench.jsonl" 2>>"$out/train_bench.err"
done

log two ranks on one GPU: resnet-train, ring all-reduce on device buffers
for ar in ring nccl; do
  mpirun -np 2 resnet-train --device cuda --model.arch=resnet18 --data.image_size=64 --train.batch_size=32 \
    --train.max_steps=30 --train.log_every=10 --comm.allreduce=$ar --comm.check_weights_every=10 \
    --train.output_dir=/tmp/rn_gpu_dp_$ar >"$out/dp_$ar.txt" 2>&1
  echo "rc=$?" >>"$out/dp_$ar.txt"
done
log done
