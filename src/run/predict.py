"""Classify images with the model Graft exported beside this file.

    pip install onnxruntime pillow numpy
    python predict.py IMAGE [IMAGE ...]

Resizes and crops as Graft does (preprocessing.json): the same Catmull-Rom resampling as the Rust
image crate, rows then columns; the model normalises itself.
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

HERE = Path(__file__).resolve().parent
PRE = json.loads((HERE / "preprocessing.json").read_text())
CLASSES = json.loads((HERE / "labels.json").read_text())
SESSION = onnxruntime.InferenceSession(str(HERE / "model.onnx"))


def catmull_rom(x):
    a = np.abs(x)
    return np.where(a < 1, 1.5 * a**3 - 2.5 * a**2 + 1, np.where(a < 2, -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2, 0))


def weights(old, new):
    """Graft's (the Rust image crate's) Catmull-Rom resampling from `old` to `new` pixels."""
    ratio = np.float32(old / new)
    scale = max(ratio, np.float32(1))
    w = np.zeros((new, old), np.float32)
    for o in range(new):
        centre = (o + np.float32(0.5)) * ratio
        left = min(max(int(np.floor(centre - 2 * scale)), 0), old - 1)
        right = min(max(int(np.ceil(centre + 2 * scale)), left + 1), old)
        taps = catmull_rom((np.arange(left, right, dtype=np.float32) - (centre - np.float32(0.5))) / scale)
        w[o, left:right] = taps / taps.sum()
    return w


def crop(path):
    """The centre crop Graft feeds the network: uint8 [S, S, 3], RGB."""
    image = Image.open(path).convert("RGBA")
    background = Image.new("RGBA", image.size, tuple(PRE["alpha_background"]) + (255,))
    image = Image.alpha_composite(background, image).convert("RGB")
    side = PRE["resize_shorter_side_to"]
    w, h = image.size
    if min(w, h) >= 4 * side:  # Graft first averages a large image down by a whole factor
        f = min(w, h) // (2 * side)
        image = image.crop((0, 0, w // f * f, h // f * f)).reduce(f)
        w, h = image.size
    if w <= h:
        size = (side, max(side, int(h * side / w + 0.5)))
    else:
        size = (max(side, int(w * side / h + 0.5)), side)
    pixels = np.asarray(image, dtype=np.float32)
    if size != (w, h):  # rows first, then columns, rounded once at the end
        pixels = np.einsum("yh,hwc->ywc", weights(h, size[1]), pixels)
        pixels = np.einsum("xw,ywc->yxc", weights(w, size[0]), pixels)
        pixels = np.floor(np.clip(pixels, 0, 255) + 0.5)
    s = PRE["center_crop"]
    left, top = int((size[0] - s) / 2 + 0.5), int((size[1] - s) / 2 + 0.5)
    return pixels[top : top + s, left : left + s].astype(np.uint8)


for name in sys.argv[1:]:
    (probabilities,) = SESSION.run(["probabilities"], {"image": crop(name)[None]})
    top = np.argsort(-probabilities[0])[:3]
    print(name, "  ".join(f"{CLASSES[i]} {probabilities[0][i]:.3f}" for i in top))
