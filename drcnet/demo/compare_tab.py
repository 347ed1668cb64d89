"""Compare tab: DRCNet, its ablation checkpoints and the classical baselines on one input."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

import drcnet.demo as base
from . import prepare, quality, task_lock, to_pil
from pathlib import Path
from typing import Callable

from . import Prepared, ablation_paths, checkpoint_path, get_restorer


@dataclass
class CompareResult:
    gallery: list[tuple[Image.Image, str]]
    table: list[list]
    headers: list[str]
    notes: list[str]


def baseline_info(prepared: Prepared, task: str) -> tuple[dict, list[str]]:
    """The info dict the baselines need; estimated (sigma) or absent (kernel) for real photos."""
    if prepared.synthetic:
        return prepared.info, []
    if task == "denoise":
        from skimage.restoration import estimate_sigma
        sigma = float(estimate_sigma(prepared.degraded, channel_axis=-1, average_sigmas=True)) * 255
        return {"task": task, "sigma": sigma}, [f"baselines use an estimated noise sigma of {sigma:.1f}"]
    return {"task": task}, []


def compare(image, task: str, reference=None, synthesize: bool = False, sigma: float = 25, rain: str = "light",
            blur_size: int = 21, seed: int = 0, max_side: int | None = None) -> CompareResult:
    """The input through the task's DRCNet, any ablation checkpoints and the classical baselines."""
    prepared = prepare(image, task, reference, synthesize, sigma, rain, blur_size, seed, max_side or base.INSPECT_MAX_SIDE)
    info, notes = baseline_info(prepared, task)
    x = prepared.degraded
    from ..baselines import BASELINES       # imported on first use: skimage.restoration is slow to import
    methods: list[tuple[str, Callable[[], np.ndarray]]] = []
    main = checkpoint_path(task)
    for path in ([main] if main.is_file() else []) + ablation_paths(task):
        name = "DRCNet" if path == main else f"DRCNet {path.stem[len(task) + 1:]}"
        methods.append((name, _model_runner(path, task, x)))
    if not main.is_file():
        notes.append(f"no {main.name}: DRCNet is missing from the comparison")
    for name, fn in BASELINES[task].items():
        if "nonblind" in name and "kernel" not in info:
            notes.append(f"{name} skipped: it needs the true blur kernel (synthetic blur only)")
            continue
        methods.append((name, lambda fn=fn: fn(x, info)))
    rows = [["input (degraded)", *_scores(x, prepared.clean, task), 0.0]]
    gallery = [(to_pil(x), "input")]
    if prepared.clean is not None:
        gallery.append((to_pil(prepared.clean), "clean reference"))
    for name, run in methods:
        start = time.perf_counter()
        try:
            out = run()
        except Exception as e:   # one failing method must not sink the comparison
            notes.append(f"{name} failed: {type(e).__name__}: {e}")
            continue
        seconds = time.perf_counter() - start
        scores = _scores(out, prepared.clean, task)
        rows.append([name, *scores, round(seconds, 3)])
        label = name + (f" ({scores[0]:.2f} dB)" if scores[0] is not None else "") + f", {seconds:.2f} s"
        gallery.append((to_pil(out), label))
    headers = ["method", "PSNR (dB)", "SSIM", "seconds"]
    if prepared.clean is None:
        notes.append("no clean reference: metrics need a synthetic degradation or an uploaded reference")
    return CompareResult(gallery, rows, headers, notes)


def _model_runner(path: Path, task: str, x: np.ndarray):
    def run():
        restorer = get_restorer(path)
        with task_lock(task):
            restorer.set_threshold(restorer.default_t)
            return restorer.restore(x, tile=base.TILE, overlap=base.TILE_OVERLAP)
    return run


def _scores(out, clean, task):
    q = quality(out, clean, task)
    return [None, None] if q is None else [round(q["psnr"], 2), round(q["ssim"], 4)]

