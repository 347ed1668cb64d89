"""The example pictures (assets/examples.json, written by scripts/make_assets.py): rows that fill the controls,
the gallery's captions, and the known degradation of a premade degraded example."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from drcnet.core.examples import example_entries
from drcnet.core.paths import ASSETS
from drcnet.demo.files import same_bytes
from drcnet.demo.settings import InputSettings


def examples(task: str | None = None) -> list[list]:
    """Rows [input, task, reference, synthesize, sigma, rain, blur_size, seed] that fill the controls; paths
    made absolute."""
    return [[str(ASSETS / e["input"]), e["task"],
             *InputSettings.from_example(e, str(ASSETS / e["reference"]) if e.get("reference") else None).as_row()]
            for e in example_entries(task)]


def example_caption(entry: dict) -> str:
    """What a visitor reads under a thumbnail: the task and its setting ("denoise, sigma 25"); the entry's own
    caption for real photos, which have no synthetic setting. The raw parameters stay out of sight."""
    if entry.get("caption"):
        return entry["caption"]
    s, task = InputSettings.from_example(entry), entry["task"]
    if task == "denoise":
        setting = f"sigma {s.sigma:g}"
    elif task == "derain":
        setting = f"{s.rain} rain"
    else:
        setting = f"{s.blur_size} px blur"
    # "clean + ...": a clean photo that the app degrades when clicked (the gallery's label says so). Captions
    # stay short enough for a thumbnail.
    return f"{task}, clean + {setting}" if s.synthesize else f"{task}, {setting}"


def known_degradation(path, task: str) -> dict | None:
    """degrade()'s info (true sigma, or the blur kernel regenerated from the recorded size and seed) for a
    premade degraded example, recognised by its file name and content; None for any other picture. The
    baselines then get what a synthetic degradation would give them, not an estimate."""
    if path in (None, ""):
        return None
    name = Path(str(path)).name
    for e in example_entries(task):
        made = e.get("settings") or {}
        if e.get("synthesize") or not made or e["input"] != name or not same_bytes(path, ASSETS / e["input"]):
            continue
        if task == "denoise":
            return {"task": task, "sigma": float(made["sigma"]), "poisson": None}
        if task == "deblur":     # scripts/make_assets.py: degrade(clean, "deblur", default_rng(seed), size=...)
            from drcnet.data.degrade import BLUR_NOISE, motion_kernel
            kernel = motion_kernel(np.random.default_rng(int(e["seed"])), int(made["size"]))
            return {"task": task, "kernel": kernel, "noise": BLUR_NOISE, "seed": int(e["seed"])}
        return {"task": task, "setting": made["setting"], "haze": False}
    return None


def example_gallery(task: str | None = None) -> list[tuple[str, str]]:
    """(thumbnail path, caption) per example, in the order of examples(): index i fills the controls with row i."""
    return [(str(ASSETS / e["input"]), example_caption(e)) for e in example_entries(task)]
