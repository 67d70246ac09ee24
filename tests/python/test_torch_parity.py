#!/usr/bin/env python3
"""PyTorch parity of resnet-infer and tools/{import,export}_torch.py, for one architecture.

    /usr/bin/python3 tests/python/test_torch_parity.py --arch resnet50 --bin-dir build/bin --tools-dir tools

a. torchvision weights (random, BN statistics and affine randomised so BN is
   not the identity) -> import_torch.py -> resnet-infer --input/--output:
   logits agree with torchvision's in eval mode.
b. a checkpoint trained by resnet-train (2 steps) -> export_torch.py --check
   -> torchvision (strict=True): its state_dict equals the HDF5 datasets
   exactly, and its logits agree with resnet-infer's.
c. import_torch.py then export_torch.py gives back identical tensors (and
   import_torch.py unwraps a DDP training checkpoint to the same state_dict).

Logits agree when max|a - b| / max|b| <= 1e-4 (printed). 10 classes, 64x64
input, batch 2 (b: 3 images, so the last batch is padded). Registered in
ctest as TorchParity.<arch>; needs torch, torchvision, h5py (Debian's
python3-torch, python3-torchvision, python3-h5py).
"""

import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import torchvision

TOLERANCE = 1e-4
CLASSES, SIZE, BATCH = 10, 64, 2


class Parity:
    def __init__(self, arch, bin_dir, tools_dir, work):
        self.arch, self.bin_dir, self.tools_dir, self.work = arch, bin_dir, tools_dir, work
        self.failures = []

    def path(self, name):
        return os.path.join(self.work, name)

    def run(self, *cmd):
        r = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout}")
        return r.stdout

    def tool(self, name, *args):  # this interpreter: the one that has torch
        return self.run(sys.executable, os.path.join(self.tools_dir, name), *args)

    def check(self, ok, what):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures.append(what)

    def infer_logits(self, checkpoint, images, tag):
        with h5py.File(self.path(f"{tag}_in.h5"), "w") as f:
            f["images"] = images.numpy()
        self.run(os.path.join(self.bin_dir, "resnet-infer"), "--checkpoint", checkpoint, "--input",
                 self.path(f"{tag}_in.h5"), "--output", self.path(f"{tag}_out.h5"), "--batch", BATCH)
        with h5py.File(self.path(f"{tag}_out.h5"), "r") as f:
            return torch.from_numpy(f["logits"][()])

    def compare_logits(self, ours, model, images, what):
        with torch.no_grad():
            theirs = model.eval()(images)
        rel = ((ours - theirs).abs().max() / theirs.abs().max()).item()
        self.check(ours.shape == theirs.shape and rel <= TOLERANCE,
                   f"{self.arch} {what}: logits relative error {rel:.3e} (max|torchvision| "
                   f"{theirs.abs().max().item():.3g}; tolerance {TOLERANCE:g})")

    def imported(self):
        """a and c: torchvision -> import_torch.py -> resnet-infer, and back through export_torch.py."""
        torch.manual_seed(1)
        model = getattr(torchvision.models, self.arch)(num_classes=CLASSES)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.2)
                    m.running_mean.normal_(0, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
                    m.num_batches_tracked.fill_(int(torch.randint(0, 1000, ())))
        state = model.state_dict()
        torch.save(state, self.path("tv.pt"))
        self.tool("import_torch.py", self.path("tv.pt"), self.path("imported.h5"), "--arch", self.arch)
        images = torch.randn(BATCH, 3, SIZE, SIZE)
        self.compare_logits(self.infer_logits(self.path("imported.h5"), images, "a"), model, images,
                            "a. import_torch.py -> resnet-infer vs torchvision")

        self.tool("export_torch.py", self.path("imported.h5"), self.path("roundtrip.pt"))
        back = torch.load(self.path("roundtrip.pt"))
        same = list(back.keys()) == list(state.keys()) and all(
            back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v)
            for k, v in state.items())
        self.check(same, f"{self.arch} c. import -> export round trip: {len(state)} tensors identical "
                         "(names, order, dtype, shape, values)")

        # A training script's checkpoint of a DDP model: the same state_dict inside.
        torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}, self.path("ddp.pt"))
        sys.path.insert(0, self.tools_dir)
        import import_torch
        unwrapped = import_torch.load_state_dict(self.path("ddp.pt"))
        self.check(list(unwrapped) == list(state) and all(torch.equal(unwrapped[k], v) for k, v in state.items()),
                   f"{self.arch} import_torch.py finds a state_dict under 'state_dict' and strips 'module.'")

    def trained(self):
        """b: resnet-train checkpoint -> export_torch.py --check -> torchvision vs resnet-infer."""
        run_dir = self.path("run")
        # lr 0.01: at 0.1, two steps of batch 2 already push resnet50's logits to ~1e18.
        self.run(os.path.join(self.bin_dir, "resnet-train"), f"--model.arch={self.arch}",
                 f"--model.num_classes={CLASSES}", f"--data.image_size={SIZE}", "--train.batch_size=2",
                 "--train.max_steps=2", "--optim.lr=0.01", "--data.val_samples=0", f"--train.output_dir={run_dir}")
        checkpoint = os.path.join(run_dir, "checkpoint.h5")
        out = self.tool("export_torch.py", checkpoint, self.path("trained.pt"), "--check")
        self.check("check passed" in out, f"{self.arch} b. export_torch.py --check loads with strict=True")
        state = torch.load(self.path("trained.pt"))
        with h5py.File(checkpoint, "r") as f:
            names = set()
            f["model"].visititems(lambda n, o: names.add(n) if isinstance(o, h5py.Dataset) else None)
            exact = names == set(state) and all(
                np.array_equal(np.asarray(f["model"][k][()]), v.numpy()) and
                v.dtype == (torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
                for k, v in state.items())
            step = int(f.attrs["step"])
        self.check(exact and step == 2, f"{self.arch} b. exported state_dict equals the checkpoint's /model "
                                        f"exactly ({len(state)} tensors, step {step})")
        model = getattr(torchvision.models, self.arch)(num_classes=CLASSES)
        model.load_state_dict(state, strict=True)
        images = torch.randn(BATCH + 1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
        self.compare_logits(self.infer_logits(checkpoint, images, "b"), model, images,
                            "b. resnet-train checkpoint: resnet-infer vs torchvision (export_torch.py)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", required=True, choices=["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
    p.add_argument("--bin-dir", required=True, help="directory of resnet-train and resnet-infer")
    p.add_argument("--tools-dir", required=True, help="directory of import_torch.py and export_torch.py")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    with tempfile.TemporaryDirectory(prefix=f"rn_parity_{a.arch}_") as work:
        t = Parity(a.arch, a.bin_dir, a.tools_dir, work)
        print(f"TorchParity.{a.arch} (torch {torch.__version__}, torchvision {torchvision.__version__}):")
        t.imported()
        t.trained()
    if t.failures:
        print(f"{len(t.failures)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
