#!/usr/bin/env python3
"""PyTorch side of Graft's benchmarks, for comparing on the same machine.

    cargo run --release -- bench --json graft-bench.json
    python bench/pytorch_baseline.py --graft-json graft-bench.json

Needs torch and torchvision (CPU builds are enough). It measures:

  steps     training-step time of EfficientNet-Lite0 and ResNet-18 at 224 px, batch 16, AdamW,
            every layer trained ("Full") and head only with the backbone frozen ("HeadOnly"),
            on random images, like `graft bench`.
  predict   single-image predict latency, warm (decode → top 5), like `graft bench`.
  accuracy  wall time until validation accuracy reaches the target on the same train/val split
            Graft used (read from the JSON), with the recipe of PyTorch's transfer-learning
            tutorial ("ConvNet as fixed feature extractor": the frozen backbone re-runs every
            epoch, SGD lr 0.001 momentum 0.9, StepLR 7/0.1, batch 4, random resized crop + flip),
            and with Graft's default recipe run the PyTorch way (AdamW 3e-3 cosine, batch 16).

EfficientNet-Lite0 is defined here with lukemelas' parameter names, so it loads the same
ImageNet weights Graft ships (assets/weights/efficientnet-lite0-57934424.pth); with
--check-parity it is checked against the reference logits first. With --graft-json, Graft's
figures are printed beside these with the ratio.
"""

import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DEVICE = torch.device("cpu")  # --device sets it


def sync():
    """Waits for queued GPU work, so that a timer reads the work's time."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()

# --- EfficientNet-Lite0 (lukemelas names, TensorFlow "SAME" padding, ReLU6, no SE) ----------

LITE0_STAGES = [  # repeats, kernel, stride, expand, out
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320),
]


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's SAME padding (more at the bottom/right when odd)."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    def __init__(self, cin, cout, kernel, stride, expand):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = bn(mid)
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class Lite0(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, 2, bias=False)
        self._bn0 = bn(32)
        blocks, cin = [], 32
        for repeats, k, s, e, out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, out, k, s if i == 0 else 1, e))
                cin = out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(cin, 1280, 1, bias=False)
        self._bn1 = bn(1280)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(1280, classes)

    def features(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean((2, 3))

    def forward(self, x):
        return self._fc(self._dropout(self.features(x)))

    def head(self):
        return self._fc


def lite0(classes, weights=None):
    model = Lite0()
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=False)
        model.load_state_dict(state)
    model._fc = nn.Linear(1280, classes)
    return model


def resnet18(classes):
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    model.fc = nn.Linear(512, classes)
    model.head = lambda: model.fc
    return model


# --- helpers -------------------------------------------------------------------------------


def freeze_backbone(model, head):
    for p in model.parameters():
        p.requires_grad = False
    for p in head.parameters():
        p.requires_grad = True


def step_bench(name, model, head, mode, batch, side, steps):
    if mode == "HeadOnly":
        freeze_backbone(model, head)
    model.train()
    if mode == "HeadOnly":
        # Like Graft's frozen groups: BatchNorm on running statistics.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    model.to(DEVICE)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    x = torch.randn(batch, 3, side, side, device=DEVICE)
    y = torch.arange(batch, device=DEVICE) % 10

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    t = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    per = (time.perf_counter() - t) / steps
    return {"model": name, "mode": mode, "batch": batch, "side": side,
            "first_step_seconds": first, "seconds_per_step": per, "images_per_sec": batch / per}


class Files(torch.utils.data.Dataset):
    def __init__(self, items, transform):
        self.items, self.transform = items, transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as im:
            return self.transform(im.convert("RGB")), label


def accuracy_run(label, split, weights, target, recipe, max_epochs, workers):
    import torchvision.transforms as T

    norm = T.Normalize([127 / 255] * 3, [128 / 255] * 3)  # Lite: (x - 127) / 128
    train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    val_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])
    start = time.perf_counter()
    model = lite0(len(split["classes"]), weights).to(DEVICE)
    freeze_backbone(model, model._fc)
    if recipe == "tutorial":
        batch, epochs = 4, max_epochs
        opt = torch.optim.SGD(model._fc.parameters(), lr=0.001, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1)
    else:
        batch, epochs = 16, 5
        opt = torch.optim.AdamW(model._fc.parameters(), lr=3e-3)
        sched = None
    train_dl = torch.utils.data.DataLoader(Files(split["train"], train_tf), batch_size=batch,
                                           shuffle=True, num_workers=workers)
    val_dl = torch.utils.data.DataLoader(Files(split["val"], val_tf), batch_size=16,
                                         num_workers=workers)
    total_steps = epochs * len(train_dl)
    step_no, reached, points = 0, None, []
    for epoch in range(1, epochs + 1):
        model.train()  # the tutorial trains in train mode: frozen BN statistics still move
        if recipe == "graft":
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        for x, y in train_dl:
            x, y = x.to(DEVICE), y.to(DEVICE)
            if recipe == "graft":
                for g in opt.param_groups:
                    g["lr"] = 3e-3 * 0.5 * (1 + math.cos(math.pi * step_no / total_steps))
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            step_no += 1
        if sched:
            sched.step()
        model.eval()
        correct = n = 0
        with torch.no_grad():
            for x, y in val_dl:
                x, y = x.to(DEVICE), y.to(DEVICE)
                correct += (model(x).argmax(1) == y).sum().item()
                n += len(y)
        acc = correct / max(n, 1)
        now = time.perf_counter() - start
        points.append({"epoch": epoch, "at_seconds": now, "val_accuracy": acc})
        print(f"    {label}: epoch {epoch} at {now:.1f} s, val accuracy {acc * 100:.1f} %", flush=True)
        if acc >= target and reached is None:
            reached = now
            break
    return {"label": label, "target": target, "seconds_to_target": reached, "epochs": points,
            "total_seconds": time.perf_counter() - start}


def predict_latency(name, model, image, runs):
    """Single-image predict, warm: decode, resize, centre crop, normalise, forward, softmax,
    top 5 — what `graft predict` does for one image."""
    import torchvision.transforms as T
    from PIL import Image

    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize([127 / 255] * 3, [128 / 255] * 3)])
    model.eval().to(DEVICE)

    def once():
        started = time.perf_counter()
        with torch.inference_mode():
            with Image.open(image) as im:
                x = tf(im.convert("RGB")).unsqueeze(0).to(DEVICE)
            model(x).softmax(1).topk(5).values.cpu()
        return time.perf_counter() - started

    first = once()
    times = sorted(once() for _ in range(runs))
    return {"model": name, "first_seconds": first, "median_seconds": times[len(times) // 2],
            "min_seconds": times[0]}


def check_parity(reference, weights):
    from safetensors.torch import load_file

    ref = load_file(reference)
    model = Lite0()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=False))
    model.eval()
    x = (ref["pixels"].float().permute(0, 3, 1, 2) - 127) / 128
    with torch.no_grad():
        diff = (model(x) - ref["logits"]).abs().max().item()
    print(f"Lite0 parity with the reference logits: max |diff| {diff:.2e}")
    if diff > 1e-3:
        raise SystemExit("this Lite0 does not match the reference; the comparison would be unfair")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graft-json", help="output of `graft bench --json`: split to use, figures to compare")
    ap.add_argument("--weights", default=os.path.join(root, "assets/weights/efficientnet-lite0-57934424.pth"))
    ap.add_argument("--check-parity", metavar="SAFETENSORS",
                    help="reference logits, e.g. ../shared/fixtures/reference/efficientnet_lite0_imagenet.safetensors")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--target", type=float, default=0.8)
    ap.add_argument("--max-epochs", type=int, default=25)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--image", help="image for the single-image predict latency (default: the one in --graft-json)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda where PyTorch has a GPU")
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.manual_seed(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {DEVICE}")
    if args.check_parity:
        check_parity(args.check_parity, args.weights)

    graft = json.load(open(args.graft_json)) if args.graft_json else None
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(DEVICE), "steps": [], "accuracy": []}
    print(f"\ntraining steps: batch {args.batch}, 224 px, AdamW, synthetic images")
    for name, build in [("efficientnet-lite0", lambda: lite0(10)), ("resnet18", lambda: resnet18(10))]:
        for mode in ["Full", "HeadOnly"]:
            model = build()
            head = model._fc if name.startswith("efficientnet") else model.fc
            r = step_bench(name, model, head, mode, args.batch, 224, args.steps)
            out["steps"].append(r)
            mine = next((g for g in (graft or {}).get("steps", [])
                         if g["model"] == name and g["mode"] == mode and g["batch"] == args.batch), None)
            line = f"  {name:<20} {mode:<9} {r['seconds_per_step']:.3f} s/step {r['images_per_sec']:6.1f} img/s"
            if mine:
                line += (f"   graft ({mine['backend']}) {mine['seconds_per_step']:.3f} s/step:"
                         f" graft/pytorch = {mine['seconds_per_step'] / r['seconds_per_step']:.2f}")
            print(line, flush=True)

    image = args.image or ((graft or {}).get("predict") or [{}])[0].get("image")
    if image:
        print(f"\nsingle-image predict (warm: decode → top 5), {image}:")
        out["predict"] = []
        for name, build in [("efficientnet-lite0", lambda: lite0(1000)), ("resnet18", lambda: resnet18(1000))]:
            r = predict_latency(name, build(), image, 20)
            out["predict"].append(r)
            line = f"  {name:<20} median {r['median_seconds'] * 1e3:6.1f} ms  min {r['min_seconds'] * 1e3:6.1f} ms"
            mine = next((g for g in (graft or {}).get("predict", []) if g["model"] == name), None)
            if mine:
                line += (f"   graft median {mine['median_seconds'] * 1e3:.1f} ms:"
                         f" graft/pytorch = {mine['median_seconds'] / r['median_seconds']:.2f}")
            print(line, flush=True)

    if not args.skip_accuracy:
        if not graft or not graft.get("split"):
            raise SystemExit("time to accuracy needs --graft-json (for the split)")
        split = graft["split"]
        print(f"\ntime to {args.target * 100:.0f} % validation accuracy on Graft's split "
              f"({len(split['train'])} train, {len(split['val'])} val):")
        for label, recipe in [("pytorch tutorial recipe", "tutorial"), ("graft recipe in pytorch", "graft")]:
            r = accuracy_run(label, split, args.weights, args.target, recipe, args.max_epochs, args.workers)
            out["accuracy"].append(r)
            reached = f"{r['seconds_to_target']:.1f} s" if r["seconds_to_target"] else "not reached"
            print(f"  {label:<36} target {reached}", flush=True)
        for g in graft.get("accuracy", []):
            reached = f"{g['seconds_to_target']:.1f} s" if g.get("seconds_to_target") else "not reached"
            line = f"  graft: {g['label']:<29} target {reached}"
            base = out["accuracy"][0]["seconds_to_target"]
            if g.get("seconds_to_target") and base:
                line += f"   graft/tutorial = {g['seconds_to_target'] / base:.2f}"
            print(line)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(out, f, indent=2)
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
