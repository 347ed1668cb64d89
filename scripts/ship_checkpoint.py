#!/usr/bin/env python
"""Make a trained run a release candidate, compare it with the shipped checkpoint, and promote it if it is better
(the logic is drcnet/ops/release.py).

    python scripts/ship_checkpoint.py --task deblur --run runs/deblur-x --max-side 256       # candidate + decision
    python scripts/ship_checkpoint.py --task deblur --weights OUT/deblur.safetensors --burst OUT/burst.json
    python scripts/ship_checkpoint.py --task deblur --promote                              # replace checkpoints/

The first form evaluates the run's best weights (validation, test, the grid gate, the real photos), scores them
against checkpoints/<task>.*, and writes everything to runs/candidates/<task>/ with a printed decision; nothing
in checkpoints/ changes until --promote (or --auto-promote), which refuses a candidate the decision did not ship.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from drcnet.ops import release
from drcnet.core.paths import checkpoint_file, SHIPPED


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, choices=["denoise", "derain", "deblur"])
    ap.add_argument("--run", type=Path, help="a training run folder (its best.safetensors and log.jsonl)")
    ap.add_argument("--weights", type=Path, help="weights file (default: RUN/best.safetensors)")
    ap.add_argument("--burst", type=Path, help="a burst's burst.json: the validation curve of --task comes from it")
    ap.add_argument("--max-side", type=int, default=release.CARD_MAX_SIDE,
                    help="centre crops of the evaluation (default %(default)s: the shipped cards' protocol)")
    ap.add_argument("--candidates", type=Path, default=release.CANDIDATES)
    ap.add_argument("--checkpoints", type=Path, default=SHIPPED)
    ap.add_argument("--promote", action="store_true", help="replace checkpoints/<task>.* by the candidate")
    ap.add_argument("--auto-promote", action="store_true", help="evaluate, then promote if the decision ships")
    args = ap.parse_args(argv)

    folder = args.candidates / args.task
    if not args.promote:
        weights = args.weights or (checkpoint_file(args.run, "best") if args.run else None)
        if weights is None:
            ap.error("give --run or --weights (or --promote)")
        curve_source = args.burst or args.run
        curve = release.validation_curve(curve_source, args.task) if curve_source else []
        decision = release.make_candidate(args.task, weights, folder, args.checkpoints, args.max_side, curve,
                                          source=str(args.run or weights))
        print(f"candidate in {folder}; " + ("promote it with --promote" if decision["ship"] else "not promoted"))
        if not (args.auto_promote and decision["ship"]):
            return decision
    for path in release.promote(args.task, folder, args.checkpoints):
        print(f"promoted {path}")


if __name__ == "__main__":
    main()
