#!/usr/bin/env python
"""Tile size and overlap against the safety gate and the test set (the logic: drcnet/eval/tiling_study.py).

    python scripts/tiling_study.py [--tasks denoise derain deblur] [--json out.json]
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
    args = ap.parse_args(argv)
    checkpoints = {task: checkpoint_file(checkpoints_dir(), task) for task in args.tasks}
    rows = tiling_study.study(split_images("test"), checkpoints, tasks=args.tasks)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(tiling_study.markdown(rows))


if __name__ == "__main__":
    main()
