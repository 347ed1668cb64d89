#!/usr/bin/env python
"""Pack the training and validation photos small enough to travel with the repository to a GPU machine.

    python scripts/pack_data.py                  # data/{train,val} -> datapack/{train,val}, longer side 720 px
    python scripts/pack_data.py --check          # is datapack/ complete? (before a GPU lease; exit 2 if not)

The logic and its reasons are in drcnet/datapack.py. datapack/ is git-ignored; a device call names it in
`carry` (docs/gpu.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drcnet.data import data_root  # noqa: E402
from drcnet.datapack import check_pack, pack  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=None, help="fetched data root (default: $DRCNET_DATA or data/)")
    ap.add_argument("--out", type=Path, default=ROOT / "datapack")
    ap.add_argument("--side", type=int, default=720)
    ap.add_argument("--limit-mb", type=float, default=20.0)
    ap.add_argument("--check", action="store_true", help="only check that --out holds a complete pack")
    args = ap.parse_args(argv)
    if args.check:
        counts = check_pack(args.out)
        print(f"data pack {args.out}: " + ", ".join(f"{k} {v} photos" for k, v in counts.items()))
        return
    manifest = pack(data_root(args.source), args.out, args.side, args.limit_mb)
    print(f"{len(manifest['files'])} photos, {manifest['bytes'] / 2 ** 20:.1f} MiB -> {args.out}")


if __name__ == "__main__":
    main()
