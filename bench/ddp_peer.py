#!/usr/bin/env python3
"""PyTorch DistributedDataParallel (gloo, CPU) peer of the data-parallel step
table in docs/benchmarks.md: the same model, image size, per-rank batch and
step count as

    mpiexec -np N resnet-train --model.arch=resnet18 --data.image_size=128
        --train.batch_size=8 --model.num_classes=10 --train.max_steps=30

Each rank: torchvision resnet18(num_classes=10), SGD(momentum 0.9, wd 1e-4),
random inputs, DDP with its default 25 MiB buckets (overlapped with
backward). Threads per rank = cores / ranks. Prints one JSON line: images/s
and ms per step over steps 21-30 (start-up excluded), as our table does.

    /usr/bin/python3 bench/ddp_peer.py --ranks 2
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision


def worker(rank, a, port, out):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(max(1, os.cpu_count() // a.ranks))
    torch.manual_seed(rank)
    distributed = a.ranks > 1
    if distributed:
        dist.init_process_group("gloo", rank=rank, world_size=a.ranks)
    model = torchvision.models.resnet18(num_classes=10)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, 10, (a.batch,))
    t_window = None
    for step in range(1, a.steps + 1):
        if step == a.steps - 9:
            if distributed:
                dist.barrier()
            t_window = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    if distributed:
        dist.barrier()
    dt = (time.perf_counter() - t_window) / 10
    if rank == 0:
        out.put({"peer": "torch-ddp-gloo" if distributed else "torch", "torch": torch.__version__, "ranks": a.ranks,
                 "global_batch": a.batch * a.ranks, "images_per_sec": a.batch * a.ranks / dt,
                 "step_ms": 1e3 * dt})
    if distributed:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--port", type=int, default=29511)
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    mp.spawn(worker, args=(a, a.port, out), nprocs=a.ranks, join=True)
    print(json.dumps(out.get(timeout=5)))


if __name__ == "__main__":
    main()
