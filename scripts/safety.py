#!/usr/bin/env python
"""The safety gate of a checkpoint, and its before/after table (the logic is drcnet/eval/safety.py).

    python scripts/safety.py --task denoise                      # the gate on the test photos (data/), 256 + 512 px
    python scripts/safety.py --task denoise --before-after       # test set + clean photos, whole vs matched statistics
    python scripts/safety.py --task denoise --photos assets      # the gate on assets/*_clean.png (what the suite runs)
"""
from __future__ import annotations

import argparse

from drcnet.eval import safety
from drcnet.data.datasets import split_images
from drcnet.serve.engine import Restorer
from drcnet.core.paths import checkpoint_file, checkpoints_dir


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, choices=["denoise", "derain", "deblur"])
    ap.add_argument("--checkpoint", help="weights (default: the shipped checkpoints/<task>.safetensors)")
    ap.add_argument("--photos", default="test", help="'test' (data/test), 'assets', or a folder of clean photos")
    ap.add_argument("--statistics", default="matched", choices=["matched", "whole"])
    ap.add_argument("--before-after", action="store_true")
    args = ap.parse_args(argv)
    checkpoint = args.checkpoint or checkpoint_file(checkpoints_dir(), args.task)
    photos = safety.asset_photos() if args.photos == "assets" else split_images(args.photos)
    if args.before_after:
        print(safety.before_after(args.task, checkpoint, photos))
        return
    result = safety.gate(args.task, Restorer.from_checkpoint(checkpoint, statistics=args.statistics), photos)
    print(result["statistics"], "\n", result["table"], "\n\nexamples:", result["examples"])
    print("\n".join(["gate: PASS"] if not result["failures"] else ["gate: FAIL", *result["failures"]]))


if __name__ == "__main__":
    main()
