#!/usr/bin/env python3
"""PyTorch peer of the gradient-accumulation rows in docs/benchmarks.md: the
same model, image size, micro-batch, accumulation and step count as

    resnet-train --model.arch=resnet50 --model.num_classes=1000
        --data.image_size=224 --train.batch_size=B --train.accumulate=K
        --train.max_steps=S --data.val_samples=0

torchvision model, SGD (momentum 0.9, weight decay 1e-4), random inputs;
each step runs K micro-batches of B (loss / K, backward accumulating into
.grad) and one optimizer step, the usual PyTorch recipe. Prints one JSON
line with images/s over the steps after the first (start-up and the first
step's allocations excluded). Run whole processes of both under a tool that
records peak memory (/usr/bin/time -v) to compare memory.

    /usr/bin/python3 bench/accumulate_peer.py --model resnet50 --batch 8 --accumulate 4 --steps 3
"""
import argparse
import json
import time

import torch
import torchvision


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=8, help="images per micro-batch")
    p.add_argument("--accumulate", type=int, default=1, help="micro-batches per step")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = getattr(torchvision.models, a.model)(num_classes=1000)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss = torch.nn.CrossEntropyLoss()
    xs = [torch.randn(a.batch, 3, a.size, a.size) for _ in range(a.accumulate)]
    ys = [torch.randint(0, 1000, (a.batch,)) for _ in range(a.accumulate)]

    def step():
        opt.zero_grad(set_to_none=False)
        for x, y in zip(xs, ys):
            (loss(m(x), y) / a.accumulate).backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(a.steps - 1):
        step()
    dt = (time.perf_counter() - t) / max(1, a.steps - 1)
    print(json.dumps({"peer": "pytorch-" + torch.__version__, "model": a.model, "batch": a.batch,
                      "accumulate": a.accumulate, "image_size": a.size, "threads": a.threads,
                      "images_per_sec": a.batch * a.accumulate / dt}))


main()
