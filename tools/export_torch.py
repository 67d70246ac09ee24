#!/usr/bin/env python3
"""Export the weights of a resnet-train checkpoint as a PyTorch state_dict.

    /usr/bin/python3 tools/export_torch.py runs/x/checkpoint.h5 resnet50.pt [--check]

Writes an OrderedDict of tensors named as torchvision's ResNets name them
(conv1.weight, layer1.0.bn1.running_mean, ..., fc.bias; num_batches_tracked
as 0-d int64), saved with torch.save, so that

    model = torchvision.models.resnet50(num_classes=N)
    model.load_state_dict(torch.load("resnet50.pt"))

works. --check does exactly that, with strict=True (possible for resnet18,
34, 50, 101 and 152; cifar-* and plain* nets are exported but cannot be
checked against torchvision, which has no such models).

Needs PyTorch, torchvision and h5py: Debian's python3-torch,
python3-torchvision and python3-h5py (scripts/install-deps.sh installs them);
run it with /usr/bin/python3 where another python3 comes first on PATH.

Exit codes: 0 done, 1 --check failed, 2 bad input (message says what to fix).
"""

import argparse
import collections
import os
import sys

import numpy as np
import torch

from rn_checkpoint import TORCHVISION_ARCHS, CheckpointError, read_model


def to_state_dict(tensors, order=None):
    """{name: numpy array} -> OrderedDict of tensors, in `order` (names) where given."""
    names = ([n for n in order if n in tensors] + sorted(set(tensors) - set(order))) if order else sorted(tensors)
    out = collections.OrderedDict()
    for name in names:
        value = np.asarray(tensors[name])
        if name.endswith(".num_batches_tracked"):
            out[name] = torch.tensor(int(value), dtype=torch.int64)
        else:
            out[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return out


def torchvision_model(arch, num_classes):
    import torchvision
    return getattr(torchvision.models, arch)(num_classes=num_classes)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Needs Debian's python3-torch/torchvision/h5py: run with /usr/bin/python3.")
    p.add_argument("checkpoint", help="resnet-train checkpoint (.h5)")
    p.add_argument("output", help="PyTorch file to write (.pt)")
    p.add_argument("--check", action="store_true",
                   help="load the result into torchvision.models.<arch>(num_classes=...) with strict=True")
    a = p.parse_args(argv)
    try:
        attrs, tensors, _ = read_model(a.checkpoint)
    except CheckpointError as e:
        print(f"export_torch.py: error: {e}", file=sys.stderr)
        return 2
    arch, num_classes = attrs["arch"], int(attrs["num_classes"])
    checkable = arch in TORCHVISION_ARCHS
    order = list(torchvision_model(arch, num_classes).state_dict().keys()) if checkable else None
    state = to_state_dict(tensors, order)
    final = os.path.abspath(a.output)
    tmp = os.path.join(os.path.dirname(final), "." + os.path.basename(final) + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, final)
    except (OSError, RuntimeError) as e:  # torch.save raises RuntimeError for a missing directory
        if os.path.exists(tmp):
            os.remove(tmp)
        print(f"export_torch.py: error: cannot write {a.output} ({e}); check that its directory exists and "
              "is writable", file=sys.stderr)
        return 2
    print(f"export_torch.py: {a.checkpoint} ({arch}, {num_classes} classes, step {attrs.get('step', 0)}): "
          f"{len(state)} tensors -> {a.output}")
    if not a.check:
        return 0
    if not checkable:
        print(f"export_torch.py: cannot check: {arch} is not a torchvision model (torchvision has "
              f"{', '.join(TORCHVISION_ARCHS)}); the export itself is complete", file=sys.stderr)
        return 0
    model = torchvision_model(arch, num_classes)
    try:
        model.load_state_dict(torch.load(final), strict=True)
    except RuntimeError as e:
        print(f"export_torch.py: check failed: torchvision.models.{arch}(num_classes={num_classes}) does not "
              f"accept the export: {e}", file=sys.stderr)
        return 1
    print(f"export_torch.py: check passed: torchvision.models.{arch}(num_classes={num_classes}) loads it "
          "with strict=True")
    return 0


if __name__ == "__main__":
    sys.exit(main())
