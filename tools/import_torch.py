#!/usr/bin/env python3
"""Import a torchvision ResNet state_dict as a weights-only resnet-train checkpoint.

    /usr/bin/python3 tools/import_torch.py resnet50.pth resnet50.h5 --arch resnet50 [--classes names.txt]

IN.pt is what torch.save wrote: a state_dict, or a dict holding one under
'state_dict' or 'model' (training scripts' checkpoints); a 'module.' prefix
(DistributedDataParallel) is removed. The names and shapes are checked by
loading into torchvision.models.<arch>(num_classes = rows of fc.weight) with
strict=True, and that model's state_dict is written (so float16/float64
weights become fp32 and a missing num_batches_tracked becomes 0).

The output has no optimizer state and step 0, and its stored configuration
names only model.arch, model.num_classes and data.image_size = 224, so

    resnet-infer --checkpoint resnet50.h5 image.JPEG
    resnet-train --config my.cfg --init-from resnet50.h5

classify with it and fine-tune from it. --classes gives the class names, one
per line (index = label), stored as /classes for resnet-infer to print.

Needs PyTorch, torchvision and h5py: Debian's python3-torch,
python3-torchvision and python3-h5py (scripts/install-deps.sh installs them);
run it with /usr/bin/python3 where another python3 comes first on PATH.

Exit codes: 0 done, 2 bad input (the message says what to fix).
"""

import argparse
import os
import sys

import torch
import torchvision

from rn_checkpoint import TORCHVISION_ARCHS, write_weights_only


class InputError(Exception):
    """The input cannot be imported; the message says why."""


def load_state_dict(path):
    """The state_dict inside torch file `path`, without a DDP 'module.' prefix."""
    if not os.path.isfile(path):
        raise InputError(f"{path} does not exist or is not a file; check the path")
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # pickle, zip and torch errors alike
        raise InputError(f"{path} is not a file torch.load can read ({type(e).__name__}: {e})") from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path} holds no state_dict (a dict of tensors, possibly under 'state_dict' or 'model')")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def read_class_names(path, num_classes):
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.rstrip("\r\n") for line in f]
    except OSError as e:
        raise InputError(f"--classes {path} cannot be read: {e.strerror}") from e
    while names and not names[-1]:
        names.pop()
    if len(names) != num_classes:
        raise InputError(f"--classes {path} has {len(names)} names but the model has {num_classes} classes "
                           "(rows of fc.weight); give one name per line")
    return names


def mismatches(state, expected):
    """Readable differences between a state_dict and the one a model expects."""
    problems = [f"{k} is missing" for k in expected
                if k not in state and not k.endswith(".num_batches_tracked")]  # torch fills those in
    problems += [f"{k} is in the file but not in the model" for k in state if k not in expected]
    problems += [f"{k} is {list(state[k].shape)} in the file, {list(v.shape)} in the model"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    return problems


def checked_model(state, arch):
    """torchvision.models.<arch> holding `state`, loaded with strict=True."""
    if "fc.weight" not in state or state["fc.weight"].dim() != 2:
        raise InputError("the state_dict has no 2-D fc.weight, so it is not a torchvision ResNet")
    num_classes = state["fc.weight"].shape[0]
    model = getattr(torchvision.models, arch)(num_classes=num_classes)
    problems = mismatches(state, model.state_dict())
    try:
        if not problems:
            model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        problems = [str(e)]
    if problems:
        more = f"\n  ... and {len(problems) - 6} more" if len(problems) > 6 else ""
        raise InputError(f"the state_dict does not fit torchvision.models.{arch}(num_classes={num_classes}) "
                         f"(wrong --arch?):\n  " + "\n  ".join(problems[:6]) + more)
    return model, num_classes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Needs Debian's python3-torch/torchvision/h5py: run with /usr/bin/python3.")
    p.add_argument("input", help="torch.save file with a torchvision ResNet state_dict (.pt, .pth)")
    p.add_argument("checkpoint", help="resnet-train checkpoint to write (.h5)")
    p.add_argument("--arch", required=True, choices=TORCHVISION_ARCHS, help="torchvision architecture")
    p.add_argument("--classes", help="text file of class names, one per line (index = label)")
    a = p.parse_args(argv)
    try:
        model, num_classes = checked_model(load_state_dict(a.input), a.arch)
        names = read_class_names(a.classes, num_classes) if a.classes else None
        tensors = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        try:
            write_weights_only(a.checkpoint, tensors, a.arch, num_classes, names)
        except OSError as e:
            raise InputError(f"cannot write {a.checkpoint}: {e}; check that its directory exists and is "
                               "writable") from e
    except InputError as e:
        print(f"import_torch.py: error: {e}", file=sys.stderr)
        return 2
    print(f"import_torch.py: {a.input} -> {a.checkpoint} ({a.arch}, {num_classes} classes, {len(tensors)} tensors"
          f"{', class names' if names else ''}; weights only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
