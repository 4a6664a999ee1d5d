#!/usr/bin/env python3
"""A big labelled folder for Graft's scale benchmarks, made from the bundled demo set.

    python bench/make_big_folder.py --per-class 2000 --out /tmp/big10k

Writes OUT/<class>/<n>.jpg: for each of the demo set's classes, PER_CLASS JPEGs, each a random
crop (half to all of the area), maybe mirrored and colour-shifted, of one of that class's demo
images, its shorter side SIDE pixels (default 160: "small images"). Seeded, so the same
arguments make the same folder. Needs Pillow. Never writes inside the demo set.
"""

import argparse
import os
import random

from PIL import Image, ImageEnhance


def variant(image, rng, side):
    w, h = image.size
    area = rng.uniform(0.5, 1.0)
    cw, ch = max(8, int(w * area ** 0.5)), max(8, int(h * area ** 0.5))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    out = image.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.7, 1.3))
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.8, 1.2))
    scale = side / min(out.size)
    return out.resize((max(1, round(out.width * scale)), max(1, round(out.height * scale))))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", default=os.path.join(here, "..", "assets", "demo"))
    parser.add_argument("--per-class", type=int, required=True)
    parser.add_argument("--side", type=int, default=160)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    demo = os.path.realpath(args.demo)
    if os.path.realpath(args.out).startswith(demo + os.sep):
        raise SystemExit(f"{args.out} is inside the demo set: choose a folder elsewhere")
    rng = random.Random(args.seed)
    for name in sorted(os.listdir(demo)):
        folder = os.path.join(demo, name)
        if not os.path.isdir(folder):
            continue
        sources = [Image.open(os.path.join(folder, f)).convert("RGB")
                   for f in sorted(os.listdir(folder))]
        target = os.path.join(args.out, name)
        os.makedirs(target, exist_ok=True)
        for n in range(args.per_class):
            picture = variant(rng.choice(sources), rng, args.side)
            picture.save(os.path.join(target, f"{n:06d}.jpg"), quality=88)
        print(f"{name}: {args.per_class} images")


if __name__ == "__main__":
    main()
