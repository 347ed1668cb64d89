#!/usr/bin/env python
"""Tile size and overlap against the safety gate and the test set (the logic: drcnet/eval/tiling_study.py).

    python scripts/tiling_study.py [--tasks denoise derain deblur] [--candidates 136/8/8 176/8/9] [--json out.json]
"""
from __future__ import annotations

import argparse
import json

from drcnet.core.paths import checkpoint_file, checkpoints_dir
from drcnet.core.tasks import TASKS
from drcnet.data.datasets import split_images
from drcnet.eval import tiling_study


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--candidates", nargs="+", metavar="TILE/OVERLAP/BATCH",
                    help="e.g. 136/8/8 (default: drcnet.eval.tiling_study.CANDIDATES)")
    ap.add_argument("--min-region", type=int, help="run with this DFR mask rule (0: the paper's mask)")
    ap.add_argument("--gate-only", action="store_true", help="the safety gate alone, not the test set")
    args = ap.parse_args(argv)
    checkpoints = {task: checkpoint_file(checkpoints_dir(), task) for task in args.tasks}
    candidates = [tuple(int(v) for v in c.split("/")) for c in args.candidates] if args.candidates \
        else tiling_study.CANDIDATES
    rows = tiling_study.study(None if args.gate_only else split_images("test"), checkpoints, candidates, tasks=args.tasks,
                              min_region=args.min_region)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(tiling_study.markdown(rows))


if __name__ == "__main__":
    main()
