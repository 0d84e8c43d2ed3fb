#!/usr/bin/env python3
"""PyTorch (CPU) reference for sbdm's training throughput.

Not run by CI: needs a PyTorch venv (see bench/README.md). Builds the same two score
networks as sbdm-runtime's `nn::Mlp` and `nn::UNet` (same architecture, same parameter
count) and times a full diffusion-trainer step on them:

    forward -> MSE loss -> backward -> clip_grad_norm_(1.0) -> AdamW(lr 1e-3, wd 0) -> EMA(0.999)

("full"), and the same step without clipping and EMA ("plain"). Each timed step draws a
fresh batch (x ~ N(0, I), c ~ U(-1.5, 1.5), target ~ N(0, I)), as a trainer does.
The reported throughput is 1 / median step time over the timed steps, after warm-up.

stdout: one JSON object; stderr: a human-readable table.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------
# MLP score model (2-D data)
# ---------------------------------------------------------------------------------------


class GaussianFourier(nn.Module):
    """emb = [sin(2πWc), cos(2πWc)], W ∈ R^(E/2) ~ N(0, scale²), fixed (a buffer)."""

    def __init__(self, embed_dim=64, scale=16.0):
        super().__init__()
        self.register_buffer("W", torch.randn(embed_dim // 2) * scale)

    def forward(self, c):
        proj = 2.0 * math.pi * c[:, None] * self.W[None, :]
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)


class MlpScore(nn.Module):
    def __init__(self, dim=2, embed_dim=64, hidden=256, depth=3, fourier_scale=16.0):
        super().__init__()
        self.fourier = GaussianFourier(embed_dim, fourier_scale)
        self.temb = nn.Linear(embed_dim, embed_dim)
        layers = [nn.Linear(dim + embed_dim, hidden)]
        layers += [nn.Linear(hidden, hidden) for _ in range(depth - 1)]
        self.hidden = nn.ModuleList(layers)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x, c):
        temb = F.silu(self.temb(self.fourier(c)))
        h = torch.cat([x, temb], dim=1)
        for layer in self.hidden:
            h = F.silu(layer(h))
        return self.out(h)


# ---------------------------------------------------------------------------------------
# U-Net score model (images)
# ---------------------------------------------------------------------------------------


def sinusoidal(c, dim=32, max_period=10000.0, scale=1000.0):
    """[sin(scale·c·f_i), cos(scale·c·f_i)], f_i = exp(−ln(max_period)·i/(dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = scale * c[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb_dim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.skip is None else self.skip(x)
        return skip + h


class Attention(nn.Module):
    """Single-head self-attention over the H·W positions, with a residual. q/k/v are one
    fused C → 3C projection (= three 1×1 convs; same parameters as sbdm's `mid.attn.qkv`)."""

    def __init__(self, ch, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = nn.Linear(ch, ch)

    def forward(self, x):
        n, ch, hh, ww = x.shape
        h = self.norm(x).reshape(n, ch, hh * ww).transpose(1, 2)  # [N, HW, C]
        q, k, v = self.qkv(h).split(ch, dim=2)
        w = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(ch), dim=-1)
        a = self.proj(torch.bmm(w, v))  # [N, HW, C]
        return x + a.transpose(1, 2).reshape(n, ch, hh, ww)


class UNetScore(nn.Module):
    def __init__(self, channels=1, base=32, mult=(1, 2, 2), num_res_blocks=1, groups=8,
                 temb_in=32, temb_dim=128):
        super().__init__()
        self.temb_in = temb_in
        self.temb1 = nn.Linear(temb_in, temb_dim)
        self.temb2 = nn.Linear(temb_dim, temb_dim)
        self.conv_in = nn.Conv2d(channels, base, 3, padding=1)

        skips = [base]
        ch = base
        self.down = nn.ModuleList()
        for level, m in enumerate(mult):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, base * m, temb_dim, groups))
                ch = base * m
                skips.append(ch)
            stage = nn.Module()
            stage.blocks = blocks
            if level != len(mult) - 1:
                stage.downsample = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
                skips.append(ch)
            else:
                stage.downsample = None
            self.down.append(stage)

        self.mid1 = ResBlock(ch, ch, temb_dim, groups)
        self.mid_attn = Attention(ch, groups)
        self.mid2 = ResBlock(ch, ch, temb_dim, groups)

        self.up = nn.ModuleList()
        for level in reversed(range(len(mult))):
            out = base * mult[level]
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(ch + skips.pop(), out, temb_dim, groups))
                ch = out
            stage = nn.Module()
            stage.blocks = blocks
            stage.upsample = nn.Conv2d(ch, ch, 3, padding=1) if level != 0 else None
            self.up.append(stage)
        assert not skips

        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = nn.Conv2d(ch, channels, 3, padding=1)

    def forward(self, x, c):
        temb_act = F.silu(self.temb2(F.silu(self.temb1(sinusoidal(c, self.temb_in)))))
        h = self.conv_in(x)
        hs = [h]
        for stage in self.down:
            for block in stage.blocks:
                h = block(h, temb_act)
                hs.append(h)
            if stage.downsample is not None:
                h = stage.downsample(h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb_act)), temb_act)
        for stage in self.up:
            for block in stage.blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), temb_act)
            if stage.upsample is not None:
                h = stage.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


# ---------------------------------------------------------------------------------------
# The training step and its timing
# ---------------------------------------------------------------------------------------

MODELS = {
    "mlp": dict(build=MlpScore, batch=4096, shape=(2,)),
    "unet": dict(build=UNetScore, batch=64, shape=(1, 16, 16)),
}


def count(tensors):
    return sum(t.numel() for t in tensors)


def bench(name, variant, args):
    spec = MODELS[name]
    torch.manual_seed(args.seed)
    model = spec["build"]()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0, foreach=args.foreach)
    ema = [p.detach().clone() for p in params]
    full = variant == "full"
    batch = args.batch or spec["batch"]
    shape = (batch,) + spec["shape"]

    def step():
        x = torch.randn(shape)
        c = torch.empty(batch).uniform_(-1.5, 1.5)
        target = torch.randn(shape)
        loss = F.mse_loss(model(x, c), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if full:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if full:
            with torch.no_grad():
                torch._foreach_mul_(ema, args.ema_decay)
                torch._foreach_add_(ema, params, alpha=1.0 - args.ema_decay)
        return loss.detach()

    for _ in range(args.warmup):
        loss = step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "model": name,
        "variant": variant,
        "batch": batch,
        "params": count(params),
        "buffers": count(model.buffers()),
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "median_step_s": med,
        "min_step_s": min(times),
        "max_step_s": max(times),
        "steps_per_s": 1.0 / med,
        "samples_per_s": batch / med,
        "final_loss": loss.item(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--model", choices=["mlp", "unet", "all"], default="all")
    p.add_argument("--variant", choices=["full", "plain", "all"], default="all",
                   help="full: clip + AdamW + EMA; plain: AdamW only")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--steps", type=int, default=30, help="timed steps (median reported)")
    p.add_argument("--batch", type=int, default=None,
                   help="override the batch size (default: mlp 4096, unet 64)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--foreach", action="store_true",
                   help="AdamW's multi-tensor (foreach) path; default: torch's choice "
                        "(the per-tensor loop on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list-params", action="store_true",
                   help="print each model's parameter names and shapes to stderr and exit")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    models = list(MODELS) if args.model == "all" else [args.model]
    variants = ["full", "plain"] if args.variant == "all" else [args.variant]

    if args.list_params:
        for name in models:
            model = MODELS[name]["build"]()
            print(f"== {name}", file=sys.stderr)
            for pname, t in model.named_parameters():
                print(f"  {pname:40s} {tuple(t.shape)}", file=sys.stderr)
            for bname, t in model.named_buffers():
                print(f"  {bname:40s} {tuple(t.shape)} (buffer, not trained)", file=sys.stderr)
            print(f"  total trainable: {count(model.parameters())}", file=sys.stderr)
        return

    load_before = os.getloadavg()[0]
    results = [bench(m, v, args) for m in models for v in variants]
    load_after = os.getloadavg()[0]
    report = {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "foreach_adamw": bool(args.foreach),
        "cpu_count": os.cpu_count(),
        # 1-minute load average: well above --threads means other work shared the cores.
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": load_after,
        "results": results,
    }
    print(json.dumps(report, indent=2))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{args.warmup} warm-up + {args.steps} timed steps, "
          f"load avg {load_before:.2f} -> {load_after:.2f}", file=sys.stderr)
    hdr = f"{'model':6s} {'variant':7s} {'batch':>6s} {'params':>9s} {'median ms':>10s} " \
          f"{'steps/s':>9s} {'samples/s':>11s}"
    print(hdr, file=sys.stderr)
    print("-" * len(hdr), file=sys.stderr)
    for r in results:
        print(f"{r['model']:6s} {r['variant']:7s} {r['batch']:6d} {r['params']:9d} "
              f"{1e3 * r['median_step_s']:10.2f} {r['steps_per_s']:9.2f} "
              f"{r['samples_per_s']:11.0f}", file=sys.stderr)


if __name__ == "__main__":
    main()
