#!/usr/bin/env python3
"""The PyTorch peer of resnet-train's checkpoint write (docs/benchmarks.md).

Saves what a resnet-train checkpoint holds -- the torchvision model's
state_dict and the SGD optimizer's state (momentum buffers) -- with
torch.save to a temporary file, fsync, rename: the same durability as
resnet-train. Prints one JSON line per repeat: arch, MB, seconds.

    /usr/bin/python3 bench/checkpoint_peer.py --arch resnet50 --repeats 3 --dir /tmp/x
"""
import argparse
import json
import os
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=".")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = getattr(torchvision.models, a.arch)(num_classes=1000)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model(torch.randn(2, 3, 32, 32)).sum().backward()  # one step: momentum buffers exist
    opt.step()
    os.makedirs(a.dir, exist_ok=True)
    path = os.path.join(a.dir, "peer.pt")
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 1}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dt = time.perf_counter() - t0
        print(json.dumps({"arch": a.arch, "mb": os.path.getsize(path) / 1e6, "seconds": round(dt, 3)}))


if __name__ == "__main__":
    main()
