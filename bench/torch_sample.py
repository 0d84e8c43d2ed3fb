#!/usr/bin/env python3
"""PyTorch (CPU) reference for sbdm's sampling speed.

Not run by CI: needs a PyTorch venv (see bench/README.md). Times DDIM (eta = 0) on the
VP SDE (beta from 0.1 to 20, t from 1 to 1e-3 on a uniform grid of --steps steps) over
--n points, the loop written plainly, as a researcher would, under torch.inference_mode:

- "oracle": eps from the exact score of a Gaussian mixture (--mixture, sbdm's JSON
  format): log-weights, log-densities and a softmax over components per step, f64;
- "mlp": eps from the quickstart's score network (2 -> 3 x 256 SiLU -> 2, 64-d Gaussian
  Fourier time embedding, EDM preconditioning), f32, random weights (the speed does not
  depend on them).

Each loop is timed in-process (start: x_T drawn; end: x_0 in memory), after one untimed
warm-up run of 2 steps. stdout: one JSON object; stderr: a table.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BETA_MIN, BETA_MAX, T_MAX, T_MIN = 0.1, 20.0, 1.0, 1e-3


def vp_kernel(t):
    """(a(t), b(t)) of the VP SDE: a = exp(-int_0^t beta / 2), b = sqrt(1 - a^2)."""
    a = math.exp(-0.25 * t * t * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN)
    return a, math.sqrt(-math.expm1(-0.5 * t * t * (BETA_MAX - BETA_MIN) - t * BETA_MIN))


class Mixture:
    """The exact eps of sum_k w_k N(mu_k, s_k^2 I) diffused to (a, b)."""

    def __init__(self, path):
        spec = json.load(open(path))
        self.log_w = torch.tensor(spec["weights"], dtype=torch.float64).log()
        self.means = torch.tensor(spec["means"], dtype=torch.float64)
        self.stds = torch.tensor(spec["stds"], dtype=torch.float64)

    def eps(self, x, a, b):
        d = x.shape[1]
        var = a * a * self.stds ** 2 + b * b  # [K]
        diff = x[:, None, :] - a * self.means[None, :, :]  # [N, K, D]
        logits = self.log_w - 0.5 * d * torch.log(2 * math.pi * var) \
            - 0.5 * (diff ** 2).sum(-1) / var
        r = torch.softmax(logits, dim=1)  # [N, K]
        score = -(r[:, :, None] * diff / var[None, :, None]).sum(1)
        return -b * score


class Fourier(nn.Module):
    def __init__(self, dim=64, scale=16.0):
        super().__init__()
        self.register_buffer("W", torch.randn(dim // 2) * scale)

    def forward(self, c):
        p = 2.0 * math.pi * c[:, None] * self.W[None, :]
        return torch.cat([torch.sin(p), torch.cos(p)], dim=1)


class Mlp(nn.Module):
    """sbdm's nn::Mlp: [x, SiLU(Linear(Fourier(c)))] -> 3 x (Linear, SiLU) -> Linear."""

    def __init__(self, dim=2, embed=64, width=256, depth=3):
        super().__init__()
        self.fourier = Fourier(embed)
        self.temb = nn.Linear(embed, embed)
        self.hidden = nn.ModuleList(
            [nn.Linear(dim + embed, width)] + [nn.Linear(width, width) for _ in range(depth - 1)])
        self.out = nn.Linear(width, dim)

    def forward(self, x, c):
        h = torch.cat([x, F.silu(self.temb(self.fourier(c)))], dim=1)
        for layer in self.hidden:
            h = F.silu(layer(h))
        return self.out(h)


class NetEps:
    """EDM preconditioning (Karras et al. 2022) around the MLP, as sbdm's NetModel."""

    def __init__(self, sigma_data):
        self.net = Mlp().eval()
        self.sd = sigma_data

    def eps(self, x, a, b):
        sigma = b / a
        c_in = 1.0 / math.sqrt(b * b + a * a * self.sd ** 2)
        c_skip = self.sd ** 2 / (sigma ** 2 + self.sd ** 2)
        c_out = sigma * self.sd / math.sqrt(sigma ** 2 + self.sd ** 2)
        c_noise = torch.full((x.shape[0],), math.log(sigma) / 4, dtype=x.dtype)
        x0 = c_skip * x / a + c_out * self.net(c_in * x, c_noise)
        return (x - a * x0) / b


def ddim(model, n, steps, dtype, seed):
    """DDIM-`steps` from x_T = b(T) z: x0 = (x - b eps)/a, x <- a' x0 + b' eps."""
    g = torch.Generator().manual_seed(seed)
    times = [T_MAX + (T_MIN - T_MAX) * i / steps for i in range(steps + 1)]
    x = torch.randn(n, 2, generator=g, dtype=dtype) * vp_kernel(T_MAX)[1]
    for t, s in zip(times[:-1], times[1:]):
        (a, b), (a2, b2) = vp_kernel(t), vp_kernel(s)
        eps = model.eps(x, a, b)
        x0 = (x - b * eps) / a
        x = a2 * x0 + b2 * eps
    return x


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mixture", required=True, help="sbdm mixture JSON (the oracle)")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--what", choices=["oracle", "mlp", "all"], default="all")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    mixture = Mixture(args.mixture)
    sigma_data = math.sqrt(float((mixture.log_w.exp() * ((mixture.means ** 2).sum(1)
                                  + 2 * mixture.stds ** 2)).sum()) / 2)
    runs = {"oracle": (mixture, torch.float64), "mlp": (NetEps(sigma_data), torch.float32)}
    whats = list(runs) if args.what == "all" else [args.what]
    load_before = os.getloadavg()[0]
    results = []
    with torch.inference_mode():
        for what in whats:
            model, dtype = runs[what]
            ddim(model, min(args.n, 1000), 2, dtype, args.seed)  # warm-up
            start = time.perf_counter()
            x = ddim(model, args.n, args.steps, dtype, args.seed)
            wall = time.perf_counter() - start
            results.append({"what": what, "n": args.n, "steps": args.steps, "wall_s": wall,
                            "second_moment": float((x.double() ** 2).sum(1).mean())})
    report = {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": os.getloadavg()[0],
        "results": results,
    }
    print(json.dumps(report, indent=2))
    for r in results:
        print(f"{r['what']:7s} DDIM-{r['steps']} over {r['n']}: {r['wall_s']:.3f} s "
              f"(E|x|^2 {r['second_moment']:.3f})", file=sys.stderr)


if __name__ == "__main__":
    main()
