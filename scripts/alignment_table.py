"""Does M_sr point at the degradation? The per-block alignment tables of docs/science.md (issue 28).

For each task: the shipped checkpoint and the same architecture with random weights (torch seed 0), the test
photos as centre crops, degraded with a known truth (drcnet.eval.alignment: heavy rain / 21 px motion blur / noise of
spatially varying sigma). Prints markdown tables: mean ROC-AUC of M_sr per block, mean Spearman, the t (a value
of M_sr, its 90th percentile) at which the mask would cover the degraded 10 %, the shipped masks' coverage and
recall at t; with --oracle, the PSNR change when the best-aligned block (and all blocks) get the true mask.

    PYTHONPATH=. DRCNET_DATA=data .venv/bin/python scripts/alignment_table.py --oracle
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from drcnet import Restorer
from drcnet.eval.alignment import TASKS, TOP, alignment_table, oracle_psnr
from drcnet.model.checkpoint import load_checkpoint
from drcnet.model.config import DRCNetConfig
from drcnet.data.datasets import centre_crop, split_images
from drcnet.model.network import DRCNet

BLOCKS = [(s, l) for s in (1, 2) for l in range(4)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--checkpoints", default="checkpoints", help="folder of <task>.safetensors")
    p.add_argument("--photos", type=int, default=None, help="use the first N test photos (default: all)")
    p.add_argument("--size", type=int, default=256, help="centre crop side in px")
    p.add_argument("--seed", type=int, default=0, help="degradation seed and torch seed of the random weights")
    p.add_argument("--oracle", action="store_true", help="also the oracle-mask PSNR table (issue 28 item 5)")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def restorers(task: str, folder: str, seed: int) -> dict:
    """{"shipped": ..., "random": ...} fp32 CPU restorers of the task's architecture."""
    model, meta = load_checkpoint(Path(folder) / f"{task}.safetensors")
    torch.manual_seed(seed)
    random_model = DRCNet(DRCNetConfig.from_dict(model.cfg.to_dict()))
    return {"shipped": Restorer(model, device="cpu", precision="fp32", meta=meta),
            "random": Restorer(random_model, device="cpu", precision="fp32")}


def markdown(rows: dict, field: str, bold_extremes: bool = False) -> str:
    """rows: {row name: {(stage, level): BlockAlignment}} -> a markdown table of one field."""
    head = "| model | " + " | ".join(f"s{s} l{l}" for s, l in BLOCKS) + " |"
    lines = [head, "|---" * (len(BLOCKS) + 1) + "|"]
    for name, table in rows.items():
        cells = []
        for key in BLOCKS:
            value = getattr(table[key], field)
            cell = "-" if not np.isfinite(value) else f"{value:.2f}"
            if bold_extremes and np.isfinite(value) and abs(value - 0.5) >= 0.15:
                cell = f"**{cell}**"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread(deltas) -> str:
    deltas = np.asarray(deltas)
    return f"{deltas.mean():+.2f} ± {deltas.std(ddof=1) if len(deltas) > 1 else 0:.2f}"


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    test = split_images("test")
    names = sorted(test)[: args.photos]
    photos = [centre_crop(test[n], args.size) for n in names]
    print(f"{len(photos)} test photos ({', '.join(names)}), {args.size} px centre crops, seed {args.seed}, "
          f"label = top {TOP:.0%} of the truth", flush=True)
    rows, shipped = {}, {}
    start = time.perf_counter()
    for task in args.tasks:
        for weights, restorer in restorers(task, args.checkpoints, args.seed).items():
            rows[f"{task} ({weights})"] = table = alignment_table(task, restorer, photos, args.seed)
            if weights == "shipped":
                shipped[task] = (restorer, table)
            print(f"  {task} {weights}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print("\n### Mean ROC-AUC of M_sr against the top-10 % truth (0.5 = chance; bold: >= 0.15 from chance)\n")
    print(markdown(rows, "auc", bold_extremes=True))
    print("\n### Mean Spearman correlation of M_sr with the truth map\n")
    print(markdown(rows, "spearman"))
    print(f"\n### The t that would cover the degraded 10 %: mean {1 - TOP:.0%} quantile of M_sr "
          "(the shipped t is 0.75)\n")
    print(markdown(rows, "t_top"))
    shipped_rows = {f"{task} (shipped)": table for task, (_, table) in shipped.items()}
    print("\n### Shipped models at their t = 0.75: mask coverage (fraction of the block's map)\n")
    print(markdown(shipped_rows, "coverage"))
    print("\n### Shipped models at t = 0.75: recall of the top-10 % truth by the mask\n")
    print(markdown(shipped_rows, "recall"))
    if not args.oracle:
        return
    print("\n### Oracle mask: PSNR change (dB, mean ± sd over photos) when M = the true top-10 % mask\n")
    print("| task | best block (AUC) | PSNR, masks as trained | oracle, best block | misplaced, best block "
          "| oracle, all 8 blocks | misplaced, all 8 blocks |")
    print("|---|---|---|---|---|---|---|")
    for task, (restorer, table) in shipped.items():
        best = max(BLOCKS, key=lambda k: table[k].auc)
        one = oracle_psnr(task, restorer, photos, [best], args.seed)
        every = oracle_psnr(task, restorer, photos, BLOCKS, args.seed)
        base = np.array(one["model"])
        cells = [spread(np.array(r[k]) - base) for r in (one,) for k in ("oracle", "misplaced")]
        cells += [spread(np.array(every[k]) - base) for k in ("oracle", "misplaced")]
        print(f"| {task} | s{best[0]} l{best[1]} ({table[best].auc:.2f}) | {base.mean():.2f} | "
              + " | ".join(cells) + " |", flush=True)
        print(f"  {task} oracle: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
