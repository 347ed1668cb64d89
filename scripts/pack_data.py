#!/usr/bin/env python
"""Pack the training and validation photos small enough to travel with the repository to a GPU machine.

    python scripts/pack_data.py                  # data/{train,val} -> datapack/{train,val}, longer side 720 px

The device machine receives the working tree plus named ignored folders, at most 64 MiB together, and cannot
download anything; the fetched photos (data/, 31 MB of JPEG at up to 4K) do not fit beside the repository.
The pack holds each photo downscaled (Lanczos) to --side on its longer side, as lossless PNG: no second JPEG
generation, whose 8 px blocks a restoration network would learn to reproduce. Refuses to write more than
--limit-mb. datapack/ is git-ignored; a device call names it in `carry` (docs/gpu.md).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from drcnet.data import data_root, list_images, load_image  # noqa: E402

SPLITS = ("train", "val")


def pack(source: Path, out: Path, side: int = 720, limit_mb: float = 20.0) -> dict:
    """Write out/<split>/<name>.png for every photo of source/<split>; returns the manifest."""
    manifest = {"side": side, "source": str(source.name), "files": {}}
    total = 0
    for split in SPLITS:
        photos = list_images(source / split)
        if not photos:
            raise SystemExit(f"no photos in {source / split}: run scripts/fetch_data.py first")
        (out / split).mkdir(parents=True, exist_ok=True)
        for path in photos:
            rgb = load_image(path, max_side=side)                     # EXIF applied, RGB, Lanczos
            target = out / split / (path.stem + ".png")
            Image.fromarray((rgb * 255.0 + 0.5).astype("uint8")).save(target, optimize=False)
            data = target.read_bytes()
            total += len(data)
            manifest["files"][f"{split}/{target.name}"] = {"from": path.name, "size": list(rgb.shape[1::-1]),
                                                          "sha256": hashlib.sha256(data).hexdigest()}
    manifest["bytes"] = total
    if total > limit_mb * 2 ** 20:
        raise SystemExit(f"the pack is {total / 2 ** 20:.1f} MiB, over --limit-mb {limit_mb}: lower --side")
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=None, help="fetched data root (default: $DRCNET_DATA or data/)")
    ap.add_argument("--out", type=Path, default=ROOT / "datapack")
    ap.add_argument("--side", type=int, default=720)
    ap.add_argument("--limit-mb", type=float, default=20.0)
    args = ap.parse_args(argv)
    manifest = pack(data_root(args.source), args.out, args.side, args.limit_mb)
    print(f"{len(manifest['files'])} photos, {manifest['bytes'] / 2 ** 20:.1f} MiB -> {args.out}")


if __name__ == "__main__":
    main()
