#!/usr/bin/env python3
"""The PyTorch peer of resnet-infer on JPEG files (docs/benchmarks.md).

Classifies JPEG files as resnet-infer does -- decode (PIL), resize the
shorter side to 256, centre crop 224, normalise with ImageNet's mean and
std, a torchvision model in eval mode under no_grad, `batch` images per
forward pass, softmax top-k -- with a DataLoader of `workers` processes
decoding ahead of the model (torchvision's usual recipe), and prints the
top class of each file.

    /usr/bin/python3 bench/infer_peer.py --arch resnet18 --weights r18.pth --threads 2 FILE...
"""
import argparse

import torch
import torchvision
from PIL import Image
from torchvision import transforms


class Files(torch.utils.data.Dataset):
    def __init__(self, paths):
        self.paths = paths
        self.t = transforms.Compose([
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as im:
            return self.t(im.convert("RGB"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--weights", help="a state_dict (torch.save); random weights without it")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="decoding processes (0: in the main process)")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = getattr(torchvision.models, a.arch)()
    if a.weights:
        model.load_state_dict(torch.load(a.weights))
    model.eval()
    loader = torch.utils.data.DataLoader(Files(a.files), batch_size=a.batch, num_workers=a.workers)
    i = 0
    with torch.no_grad():
        for x in loader:
            p = torch.softmax(model(x), dim=1)
            prob, cls = p.max(dim=1)
            for pr, c in zip(prob.tolist(), cls.tolist()):
                print(f"{a.files[i]}\n  1. {pr:.4f}  class {c}")
                i += 1


if __name__ == "__main__":
    main()
