"""Restore tab: one image at full resolution (tiled above the registry's tile size, with progress per tile)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from drcnet.demo.inputs import prepare, quality, to_pil
from drcnet.demo.settings import InputSettings


@dataclass
class RestoreResult:
    before: Image.Image
    after: Image.Image
    stage1: Image.Image | None
    facts: str
    metrics: dict | None             # {"input": {psnr, ssim}, "drcnet": {psnr, ssim}} when a reference is known
    download: Path                   # PNG of the result as the input was: alpha re-attached, grey, 16 bits
    stats: dict


def restore(registry, image, task: str, settings: InputSettings = InputSettings(), *, stage1: bool = False,
            progress: Callable[[int, int], None] | None = None) -> RestoreResult:
    """Restore one image at full resolution at the checkpoint's trained t."""
    limits = registry.limits
    prepared = prepare(image, task, settings, cache=registry.inputs, max_pixels=limits.max_pixels)
    restorer = registry.model_for(task)
    with registry.lock(task):
        out = restorer.restore(prepared.degraded, progress=progress, return_stage1=stage1)   # the spec's tiles
        stats = dict(restorer.last_stats)
    out2, out1 = out if stage1 else (out, None)
    metrics = None
    if prepared.clean is not None:
        metrics = {"input": quality(prepared.degraded, prepared.clean, task),
                   "drcnet": quality(out2, prepared.clean, task)}
    facts = _facts(task, stats, f"{restorer.describe_statistics()} | {stats['path']}", metrics, prepared)
    download = registry.outputs.result_file(prepared, out2)
    return RestoreResult(to_pil(prepared.degraded), to_pil(out2), None if out1 is None else to_pil(out1), facts,
                         metrics, download, stats)


def _facts(task: str, stats: dict, statistics: str, metrics: dict | None, prepared) -> str:
    h, w = stats["size"]
    facts = (f"{task} | {w}x{h} | device {stats['device']} | precision {stats['precision']} | "
             f"{stats['seconds']:.2f} s | {stats['tiles']} tile{'s' if stats['tiles'] != 1 else ''} | {statistics}")
    if metrics:
        m, i = metrics["drcnet"], metrics["input"]
        facts += (f" | PSNR {i['psnr']:.2f} -> {m['psnr']:.2f} dB, SSIM {i['ssim']:.3f} -> {m['ssim']:.3f}"
                  f"{' (Y channel)' if task == 'derain' else ''}")
    if prepared.synthetic:
        facts += " | synthetic " + describe_info(prepared.info)
    if prepared.notes:
        facts += " | " + "; ".join(prepared.notes)
    return facts


def describe_info(info: dict) -> str:
    if info.get("task") == "denoise":
        return f"noise sigma {info['sigma']:g}"
    if info.get("task") == "derain":
        return f"{info['setting']} rain"
    if info.get("task") == "deblur":
        seed = f" (seed {info['seed']})" if "seed" in info else ""
        return f"motion blur, kernel {info['kernel'].shape[0]} px{seed}"
    return ""
