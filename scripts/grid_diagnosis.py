#!/usr/bin/env python
"""Where a checkpoint's grid artifacts come from: the loss gradients' grid structure, and the grid ratio
of a training run's checkpoints over its iterations.

    python scripts/grid_diagnosis.py --checkpoint checkpoints/deblur.safetensors [--runs runs/a runs/b]

1. For blurred test crops, the gradient with respect to the output of the L1 term and of alpha x Intra-CR
   (both halves of the paper's loss), scored by drcnet.eval.evaluate.grid_phase_ratio at 4, 8 and 16 px: a term
   whose gradient stands out on one phase of a grid is a term that pays the network to write that grid.
   Also the cosine between each term's descent direction (-gradient) and the output's own 3x3 high-pass at
   the strongest phase of its 8 px grid: > 0 means the term makes the dots stronger, < 0 that it removes them.
2. For each run directory given, the worst grid_artifact_ratio of its last.safetensors / best.safetensors on
   the same crops: whether continued training with a given loss removes the grid or keeps it.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from drcnet.model.checkpoint import load_checkpoint
from drcnet.data.datasets import FixedEvalSet, split_images
from drcnet.eval.evaluate import (GRID_PERIODS, grid_artifact_ratio, grid_phase_ratio, high_pass,
                             phase_energy)
from drcnet.train.losses import IntraCR
from drcnet.core.paths import checkpoint_file, SHIPPED


def crops(task: str, count: int, side: int):
    items = list(FixedEvalSet(split_images("test"), task, max_side=side))
    return items[:count]


def dot_alignment(out: torch.Tensor, grad: torch.Tensor, period: int = 8) -> float:
    """cos(-grad, high-pass of out) over the pixels of the grid phase where out's high-pass is largest."""
    high = high_pass(out[0].numpy().transpose(1, 2, 0))
    phases = phase_energy(high, period)
    py, px = np.unravel_index(phases.argmax(), phases.shape)
    h, w = (high.shape[0] // period) * period, (high.shape[1] // period) * period      # whole grid cells only
    dots = high[py:h:period, px:w:period]
    step = -grad[0].numpy().transpose(1, 2, 0)[py:h:period, px:w:period]
    return float((dots * step).sum() / np.sqrt((dots ** 2).sum() * (step ** 2).sum() + 1e-30))


def gradient_structure(model, items, alpha: float = 0.04) -> dict:
    cr = IntraCR()
    rows = {"l1": [], "intra-cr": []}
    for item in items:
        x = torch.from_numpy(item["degraded"].transpose(2, 0, 1).copy())[None]
        clean = torch.from_numpy(item["clean"].transpose(2, 0, 1).copy())[None]
        with torch.no_grad():
            out = model(x)[1]
        for name, loss_fn in (("l1", lambda o: (o - clean).abs().mean()),
                              ("intra-cr", lambda o: alpha * cr(o, clean, x))):
            o = out.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss_fn(o), o)
            row = {p: grid_phase_ratio(g[0].numpy().transpose(1, 2, 0), p) for p in GRID_PERIODS}
            row["dots"] = dot_alignment(out, g)
            rows[name].append(row)
    keys = (*GRID_PERIODS, "dots")
    return {name: {k: float(np.median([r[k] for r in rs])) for k in keys} for name, rs in rows.items()}


def worst_grid(path, items) -> float:
    model = load_checkpoint(path)[0]
    worst = 0.0
    for item in items:
        x = torch.from_numpy(item["degraded"].transpose(2, 0, 1).copy())[None]
        with torch.no_grad():
            out = model(x)[1][0].clamp(0, 1).numpy().transpose(1, 2, 0)
        worst = max(worst, grid_artifact_ratio(out, item["clean"]))
    return worst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(checkpoint_file(SHIPPED, "deblur")))
    ap.add_argument("--task", default="deblur")
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--side", type=int, default=192)
    ap.add_argument("--runs", nargs="*", default=[])
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    items = crops(args.task, args.count, args.side)
    model = load_checkpoint(args.checkpoint)[0]
    print(f"gradient grid structure (median over {len(items)} crops; 1 = none), {args.checkpoint}:")
    print("| loss term | " + " | ".join(f"{p} px" for p in GRID_PERIODS) + " | cos(descent, dots) |\n|---|---|---|---|---|")
    for name, row in gradient_structure(model, items).items():
        print(f"| {name} | " + " | ".join(f"{row[p]:.2f}" for p in GRID_PERIODS) + f" | {row['dots']:+.2f} |")
    print(f"\nworst grid_artifact_ratio: {args.checkpoint}: {worst_grid(args.checkpoint, items):.2f}")
    for run in args.runs:
        for name in ("best", "last"):
            path = checkpoint_file(run, name)
            if path.is_file():
                it = load_checkpoint(path)[1]["training"].get("iterations")
                print(f"worst grid_artifact_ratio: {path} (iteration {it}): {worst_grid(path, items):.2f}")


if __name__ == "__main__":
    main()
