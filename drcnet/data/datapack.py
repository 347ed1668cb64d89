"""The data pack: the training and validation photos, small enough to travel with the repository to a GPU
machine (docs/gpu.md), and the check that one is there before any machine time is spent on training.

The device machine receives the working tree plus named ignored folders, at most 64 MiB together, and cannot
download anything; the fetched photos (data/, 31 MB of JPEG at up to 4K) do not fit beside the repository.
The pack holds each photo downscaled (Lanczos) to `side` on its longer side, as lossless PNG: no second JPEG
generation, whose 8 px blocks a restoration network would learn to reproduce.

    python -m drcnet.data.datapack            # data/{train,val} -> datapack/{train,val}, longer side 720 px
    python -m drcnet.data.datapack --check    # is datapack/ complete? (before a GPU lease; exit 2 if not)

(scripts/pack_data.py is the same command.)
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from drcnet.core.paths import REPO

SPLITS = ("train", "val")


class MissingPackError(SystemExit):
    """No usable data pack: the burst says so before training instead of failing in every task."""


def pack(source: Path, out: Path, side: int = 720, limit_mb: float = 20.0) -> dict:
    """Write out/<split>/<name>.png for every photo of source/<split>; returns the manifest."""
    from PIL import Image

    from drcnet.data.datasets import list_images, read_photo

    manifest = {"side": side, "source": str(source.name), "files": {}}
    total = 0
    for split in SPLITS:
        photos = list_images(source / split)
        if not photos:
            raise SystemExit(f"no photos in {source / split}: run scripts/fetch_data.py first")
        (out / split).mkdir(parents=True, exist_ok=True)
        for path in photos:
            rgb = read_photo(path, max_side=side)                     # EXIF applied, RGB, Lanczos
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


def check_pack(folder: Path) -> dict:
    """{split: photo count} of a pack, or MissingPackError saying how to make one. A pack with a MANIFEST.json
    must hold every file it lists (a carry cut short shows here, not as a crash inside a training child)."""
    from drcnet.data.datasets import list_images

    folder = Path(folder)
    hint = "build it with `python scripts/pack_data.py` and carry it (docs/gpu.md)"
    counts = {split: len(list_images(folder / split)) if (folder / split).is_dir() else 0 for split in SPLITS}
    if not folder.is_dir() or not all(counts.values()):
        raise MissingPackError(f"no data pack in {folder} ({', '.join(f'{k}: {v} photos' for k, v in counts.items())})"
                               f": {hint}")
    manifest = folder / "MANIFEST.json"
    if manifest.is_file():
        missing = [name for name in json.loads(manifest.read_text())["files"] if not (folder / name).is_file()]
        if missing:
            raise MissingPackError(f"the data pack in {folder} lacks {len(missing)} of its files "
                                   f"(first: {missing[0]}): {hint}")
    return counts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Pack the training and validation photos for a GPU machine.")
    ap.add_argument("--source", type=Path, default=None, help="fetched data root (default: $DRCNET_DATA or data/)")
    ap.add_argument("--out", type=Path, default=REPO / "datapack")
    ap.add_argument("--side", type=int, default=720)
    ap.add_argument("--limit-mb", type=float, default=20.0)
    ap.add_argument("--check", action="store_true", help="only check that --out holds a complete pack")
    args = ap.parse_args(argv)
    if args.check:
        counts = check_pack(args.out)
        print(f"data pack {args.out}: " + ", ".join(f"{k} {v} photos" for k, v in counts.items()))
        return
    from drcnet.data.datasets import data_root

    manifest = pack(data_root(args.source), args.out, args.side, args.limit_mb)
    print(f"{len(manifest['files'])} photos, {manifest['bytes'] / 2 ** 20:.1f} MiB -> {args.out}")


if __name__ == "__main__":
    main()
