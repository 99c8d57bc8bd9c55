r"""PyTorch reference for bench/train_step.py and bench/scene_inference.py: the same SIC U-Net (and
regional loss), in PyTorch.

NOT part of tfseaice and not a dependency: run it with a separate interpreter
that has torch (e.g. `python3.11 -m venv /tmp/torchvenv &&
/tmp/torchvenv/bin/pip install torch==2.13.0 numpy`), from the repository root:

  /tmp/torchvenv/bin/python -m bench.torch_unet_reference --mode=bf16_cl \
      [--batch_size=16 --patch_size=256 --filters=16,32,64,64 --steps=4 --warmup=2]

Modes: fp32 (NCHW), fp32_cl (channels_last), bf16 (torch.autocast CPU bf16),
bf16_cl (autocast + channels_last), and *_compile (torch.compile of the step).

--inference: the forward pass alone (eval mode, torch.inference_mode) on `--batch_size` tiles of
`--patch_size`² (e.g. 4 x 512², as tfseaice's whole-scene inference calls its model), reported
as Mpx/s of tile pixels; no tiling, blending or copies are counted on this side.

Layer for layer the network of tfseaice.models.unet.build_sic_unet:
standardise (NaN -> 0), 4 encoder blocks of 2 x (conv3x3 no bias - BN - ReLU)
with 2x2 max-pooling between them, a bridge block, 4 decoder blocks of
bilinear x2 upsampling (half-pixel centres, = TF's resize) - concat(up, skip)
- 2 x (conv3x3 - BN - ReLU), a 1x1 conv and a sigmoid. BatchNorm momentum 0.1
(= Keras 0.9) and eps 1e-3 (Keras' default). The regional loss is the same
vectorised per-polygon mean (index_add_ over batch*K segments), Adam lr 1e-3,
the same synthetic batch (bench.lib.data.sic_batch). Prints one JSON line.
Imports numpy and bench.lib.data / bench.lib.timing only (no TensorFlow).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from bench.lib.data import sic_batch
from bench.lib.timing import Contention


def build(torch, nn, channels, filters, mean, std):
    F = torch.nn.functional

    def double_conv(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1),
            nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
            self.enc = nn.ModuleList()
            cin = channels
            for f in filters:
                self.enc.append(double_conv(cin, f))
                cin = f
            self.bridge = double_conv(filters[-1], filters[-1])
            self.dec = nn.ModuleList()
            up = filters[-1]
            for f in reversed(filters):
                self.dec.append(double_conv(up + f, f))
                up = f
            self.dec = nn.ModuleList(reversed(list(self.dec)))  # dec[i] pairs with enc[i]
            self.logits = nn.Conv2d(filters[0], 1, 1)

        def forward(self, x):
            z = (x - self.mean) / self.std
            x = torch.where(torch.isfinite(z), z, torch.zeros_like(z))
            skips = []
            for i, block in enumerate(self.enc):
                if i:
                    x = F.max_pool2d(x, 2)
                x = block(x)
                skips.append(x)
            x = self.bridge(F.max_pool2d(x, 2))
            for i in reversed(range(len(self.enc))):
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                x = self.dec[i](torch.cat([x, skips[i]], dim=1))
            return torch.sigmoid(self.logits(x).float())

    return UNet()


def regional_loss(torch, pred, ids, sic):
    """Eq. 1, vectorised: mean over present (image, polygon) pairs of the squared error."""
    b, k = sic.shape
    valid = (ids >= 0) & (ids < k)
    offsets = (torch.arange(b, device=ids.device) * k).view(-1, 1, 1)
    dump = b * k
    seg = torch.where(valid, ids + offsets, torch.full_like(ids, dump)).reshape(-1)
    p = pred.reshape(-1).float()
    sums = torch.zeros(dump + 1, dtype=torch.float32).index_add_(0, seg, p)[:-1]
    counts = torch.zeros(dump + 1, dtype=torch.float32).index_add_(0, seg, valid.reshape(-1).float())[:-1]
    means = (sums / counts.clamp(min=1.0)).view(b, k)
    present = ((counts.view(b, k) > 0) & torch.isfinite(sic)).float()
    sq = (means - torch.where(present > 0, sic, torch.zeros_like(sic))) ** 2 * present
    return sq.sum() / present.sum().clamp(min=1.0)


def count_flops(torch, model, x):
    """(forward FLOPs per image, training FLOPs per image): the convs' 2*Hout*Wout*k*k*Cin*Cout."""
    rows = []

    def hook(mod, inp, out):
        kh, kw = mod.kernel_size
        rows.append(2 * out.shape[2] * out.shape[3] * kh * kw * mod.in_channels * mod.out_channels // mod.groups)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model.eval()
        model(x[:1])
        model.train()
    for h in handles:
        h.remove()
    fwd = sum(rows)
    return fwd, 3 * fwd - rows[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="bf16_cl",
                    choices=["fp32", "fp32_cl", "bf16", "bf16_cl", "fp32_compile", "bf16_cl_compile"])
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--patch_size", type=int, default=256)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--filters", default="16,32,64,64")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch default)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--inference", action="store_true", help="time the forward pass only (see the docstring)")
    args = ap.parse_args(argv)

    try:
        import torch
        from torch import nn
    except ImportError:
        sys.exit(f"ERROR: {sys.executable}: has no torch; run this reference with an interpreter that has "
                 "torch (see the module docstring)")

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.inference:
        return inference(torch, nn, args)
    filters = [int(f) for f in args.filters.split(",")]
    batch = sic_batch(args.batch_size, args.patch_size, args.channels, args.seed)
    channels_last = "_cl" in args.mode
    bf16 = args.mode.startswith("bf16")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.from_numpy(batch["sar"]).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    ids = torch.from_numpy(batch["polygon_ids"]).long()
    sic = torch.from_numpy(batch["polygon_sic"])
    model = build(torch, nn, args.channels, filters, [-16.0 - 5 * c for c in range(args.channels)],
                  [5.0] * args.channels).to(memory_format=fmt)
    fwd, train = count_flops(torch, model, x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = model(x)
        loss = regional_loss(torch, pred, ids, sic)
        loss.backward()
        opt.step()
        return loss

    if args.mode.endswith("_compile"):
        step = torch.compile(step)
    t = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warm = time.perf_counter() - t
    load_before = [round(v, 2) for v in os.getloadavg()]
    times, losses = [], []
    with Contention() as contention:
        for _ in range(args.steps):
            t = time.perf_counter()
            loss = step()
            losses.append(float(loss.detach()))
            times.append(time.perf_counter() - t)
    cpu_util = contention.cpu_share
    step_s = float(np.median(times))
    ips = args.batch_size / step_s
    labels = {"fp32": "fp32", "fp32_cl": "fp32 channels_last", "bf16": "bf16 autocast",
              "bf16_cl": "bf16 autocast channels_last", "fp32_compile": "fp32 torch.compile",
              "bf16_cl_compile": "bf16 autocast channels_last torch.compile"}
    out = {"label": f"{labels[args.mode]} b{args.batch_size} {args.patch_size}px", "mode": args.mode,
           "torch_version": torch.__version__, "threads": torch.get_num_threads(),
           "config": vars(args), "warmup_seconds": warm, "step_seconds_median": step_s,
           "step_seconds_all": times, "steps_per_s": 1 / step_s, "images_per_s": ips,
           "forward_gflop_per_image": fwd / 1e9, "train_gflop_per_image": train / 1e9,
           "achieved_gflops": train * ips / 1e9, "losses": losses,
           "loss_finite": bool(np.all(np.isfinite(losses))), "cpu_utilisation": cpu_util,
           "cpu_stall_fraction": contention.stall,
           "loadavg_before": load_before, "loadavg_after": [round(v, 2) for v in os.getloadavg()]}
    print(f"torch {args.mode}: {ips:.2f} img/s ({step_s:.3f} s/step), losses {losses}", file=sys.stderr)
    print(json.dumps(out))
    return 0


LABELS = {"fp32": "fp32", "fp32_cl": "fp32 channels_last", "bf16": "bf16 autocast",
          "bf16_cl": "bf16 autocast channels_last", "fp32_compile": "fp32 torch.compile",
          "bf16_cl_compile": "bf16 autocast channels_last torch.compile"}


def inference(torch, nn, args):
    """Forward pass only: Mpx/s of `batch_size` tiles of `patch_size`² (one JSON line)."""
    filters = [int(f) for f in args.filters.split(",")]
    rng = np.random.default_rng(args.seed)
    sar = rng.normal([-14.5, -24.7][:args.channels] + [-20.0] * max(0, args.channels - 2), 5.0,
                     (args.batch_size, args.patch_size, args.patch_size, args.channels)).astype(np.float32)
    channels_last = "_cl" in args.mode
    bf16 = args.mode.startswith("bf16")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.from_numpy(sar).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    model = build(torch, nn, args.channels, filters, [-14.5, -24.7][:args.channels], [5.7, 4.8][:args.channels])
    model = model.to(memory_format=fmt).eval()
    fwd, _ = count_flops(torch, model, x)
    model.eval()

    def forward():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(x)

    if args.mode.endswith("_compile"):
        forward = torch.compile(forward)
    t = time.perf_counter()
    for _ in range(args.warmup):
        out = forward()
    warm = time.perf_counter() - t
    load_before = [round(v, 2) for v in os.getloadavg()]
    times = []
    with Contention() as contention:
        for _ in range(args.steps):
            t = time.perf_counter()
            out = forward()
            times.append(time.perf_counter() - t)
    call_s = float(np.median(times))
    px = args.batch_size * args.patch_size ** 2
    out = {"label": f"{LABELS[args.mode]} forward {args.batch_size}x{args.patch_size}px", "mode": args.mode,
           "inference": True, "torch_version": torch.__version__, "threads": torch.get_num_threads(),
           "config": vars(args), "warmup_seconds": warm, "call_seconds_median": call_s,
           "call_seconds_min": float(np.min(times)), "call_seconds_all": times,
           "pixels_per_call": px, "mpx_per_s": px / call_s / 1e6, "mpx_per_s_best": px / float(np.min(times)) / 1e6,
           "forward_gflop_per_image": fwd / 1e9, "achieved_gflops": fwd * args.batch_size / call_s / 1e9,
           "output_finite": bool(torch.isfinite(out.float()).all()),
           "cpu_utilisation": contention.cpu_share, "cpu_stall_fraction": contention.stall,
           "loadavg_before": load_before, "loadavg_after": [round(v, 2) for v in os.getloadavg()]}
    print(f"torch {args.mode} forward: {out['mpx_per_s']:.2f} Mpx/s ({call_s:.3f} s/call)", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
