"""Make the app's example images in assets/ from scikit-image's bundled photos (no download).

    python scripts/make_assets.py [OUT_DIR]        # default: assets/  (the logic: make_assets(out) here)

Synthetic examples are degraded with drcnet.data.degrade and fixed seeds, so this script reproduces the committed
files bit for bit (given the same numpy/scipy/Pillow). Noisy and rainy inputs are PNG (JPEG would alter the
degradation); every file stays under 300 KB. Writes examples.json, which drcnet.demo.examples reads, with every
row: the synthetic ones, the real degraded photos (Hubble deep field noise, the camera-shake clock) and their
gallery captions, so regenerating loses nothing (tests/test_demo.py checks it against the committed files).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from drcnet.core.paths import ASSETS
from drcnet.data.degrade import degrade

LIMIT = 300_000


def skimage_photo(name: str) -> np.ndarray:
    from skimage import data
    local = Path(os.path.dirname(data.__file__)) / f"{name}.png"     # files without a loader function
    if local.is_file():
        return np.asarray(Image.open(local).convert("RGB"))
    return getattr(data, name)()


def crop_resize(img: np.ndarray, side: int, box=None) -> np.ndarray:
    """Centre square crop (or the given box y0, x0, size), resized to side x side, float32 in [0, 1]."""
    h, w = img.shape[:2]
    if box is None:
        s = min(h, w)
        box = ((h - s) // 2, (w - s) // 2, s)
    y, x, s = box
    pil = Image.fromarray(img[y:y + s, x:x + s]).resize((side, side), Image.LANCZOS)
    return np.asarray(pil.convert("RGB"), np.float32) / 255.0


def save(out: Path, rgb: np.ndarray, name: str) -> str:
    path = out / name
    Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(path, optimize=True)
    size = path.stat().st_size
    if size > LIMIT:
        raise SystemExit(f"{name} is {size} bytes, over the {LIMIT} byte limit")
    return name


def pair(out: Path, task: str, photo: str, stem: str, side: int, seed: int, box=None, **settings) -> dict:
    clean = crop_resize(skimage_photo(photo), side, box)
    degraded, _ = degrade(clean, task, np.random.default_rng(seed), **settings)
    return {"task": task, "input": save(out, degraded, f"{stem}_{task}.png"),
            "reference": save(out, clean, f"{stem}_clean.png"),
            "synthesize": False, "source": f"skimage.data.{photo}", "seed": seed,
            "settings": {k: v for k, v in settings.items()}}


def clean_only(out: Path, task: str, photo: str, stem: str, side: int, box=None, **ui) -> dict:
    """A clean photo the app degrades itself ("degrade a clean photo first")."""
    name = f"{stem}_clean.png"
    if not (out / name).exists():
        save(out, crop_resize(skimage_photo(photo), side, box), name)
    return {"task": task, "input": name, "reference": None, "synthesize": True, "source": f"skimage.data.{photo}",
            **ui}


def real_photos(out: Path) -> tuple[dict, dict]:
    """The real degraded photos (no clean reference exists), each with the caption the gallery shows."""
    from skimage import data
    # Real low-light noise: a 256 px crop (x 350-606, y 300-556) of the Hubble eXtreme Deep Field, whose dark
    # sky carries real sensor and photon noise; copied pixel for pixel (no resampling).
    hubble = data.hubble_deep_field()[300:556, 350:606]
    save(out, hubble.astype(np.float32) / 255.0, "hubble_noise.png")
    noise = {"task": "denoise", "input": "hubble_noise.png", "reference": None, "synthesize": False,
             "source": "skimage.data.hubble_deep_field (real low-light sensor noise)",
             "caption": "denoise, real noise (Hubble)", "settings": {}}
    # A real camera-shake blur: skimage's clock_motion.png (grey; shipped with scikit-image), copied unchanged.
    real = Path(os.path.dirname(data.__file__)) / "clock_motion.png"
    shutil.copyfile(real, out / "clock_motion.png")
    shake = {"task": "deblur", "input": "clock_motion.png", "reference": None, "synthesize": False,
             "source": "skimage.data clock_motion.png (real motion blur)", "settings": {},
             "caption": "deblur, real camera shake"}
    return noise, shake


def make_assets(out: Path = ASSETS) -> list[dict]:
    """Write every example picture and examples.json into out; returns the rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    noise, shake = real_photos(out)
    rows = [
        pair(out, "denoise", "astronaut", "astronaut", 256, seed=11, sigma=25),
        pair(out, "denoise", "chelsea", "chelsea", 256, seed=12, sigma=50),
        clean_only(out, "denoise", "coffee", "coffee", 320, sigma=15, seed=0),
        noise,
        pair(out, "derain", "rocket", "rocket", 320, seed=21, setting="light"),
        pair(out, "derain", "astronaut", "astronaut", 256, seed=22, setting="heavy"),
        clean_only(out, "derain", "chelsea", "chelsea", 256, rain="heavy", seed=3),
    ]
    deblur = pair(out, "deblur", "chelsea", "chelsea", 256, seed=31, size=21)
    deblur["settings"] = {"size": 21}
    rows += [deblur, clean_only(out, "deblur", "coffee", "coffee", 320, blur_size=25, seed=5), shake]
    # The Extra-CR explorer's "other image" (a different picture, degraded on the fly).
    save(out, crop_resize(skimage_photo("coffee"), 256), "extra_cr_negative.png")
    for r in rows:
        r["settings"] = {k: (v if not isinstance(v, np.ndarray) else None) for k, v in r.get("settings", {}).items()}
    (out / "examples.json").write_text(json.dumps(rows, indent=1) + "\n")
    for p in sorted(out.glob("*.png")):
        print(f"{p.name:32s} {p.stat().st_size:>8,d} bytes")
    return rows
