#!/usr/bin/python3
"""Writes an ImageNet-style folder of photo-like JPEGs for the loader benchmark.

usage: make_jpeg_folder.py OUT [--classes 10] [--per-class 100] [--size 500x375] [--quality 90]

Each image is smooth colour fields (upsampled low-resolution noise), a few
edges and fine texture, so that its JPEG size and decode cost are close to a
photograph's (ImageNet averages about 110 KB at roughly 400x350-500x375),
not those of flat colour or white noise. Needs python3-numpy and python3-pil.
"""
import argparse, os
import numpy as np
from PIL import Image, ImageFilter

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--classes", type=int, default=10)
p.add_argument("--per-class", type=int, default=100)
p.add_argument("--size", default="500x375")
p.add_argument("--quality", type=int, default=90)
a = p.parse_args()
w, h = (int(v) for v in a.size.split("x"))
rng = np.random.default_rng(0)
total = 0
for c in range(a.classes):
    d = os.path.join(a.out, f"n{c:08d}")
    os.makedirs(d, exist_ok=True)
    for i in range(a.per_class):
        low = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
        base = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC), dtype=np.float32)
        mid = np.asarray(Image.fromarray(rng.uniform(0, 255, (h // 8, w // 8, 3)).astype(np.uint8))
                         .resize((w, h), Image.BILINEAR), dtype=np.float32)
        fine = rng.normal(0, 7, (h, w, 1)).astype(np.float32)
        img = np.clip(0.65 * base + 0.35 * mid, 0, 255).astype(np.uint8)
        smooth = np.asarray(Image.fromarray(img).filter(ImageFilter.SMOOTH), dtype=np.float32)
        im = Image.fromarray(np.clip(smooth + fine, 0, 255).astype(np.uint8))
        path = os.path.join(d, f"img_{c}_{i:05d}.JPEG")
        im.save(path, quality=a.quality)
        total += os.path.getsize(path)
n = a.classes * a.per_class
print(f"{n} images of {w}x{h} in {a.out}, mean {total / n / 1024:.0f} KiB")
