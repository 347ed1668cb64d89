"""Inspect DFR tab: the maps of one DFR block at a chosen threshold t, all blocks at once, and a t sweep."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

import drcnet.demo as base
from . import DemoError, model_for, prepare, quality, task_lock, to_pil
from .figures import _heat, _plt, fig_to_image
from ..engine import Restorer
from ..probes import FeatureProbe

LEVEL_NAMES = base.LEVEL_NAMES


def _upsample(mask: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour resize of a level's map to the image size (levels are 1/2^i of the input)."""
    h, w = shape[:2]
    ys = np.minimum((np.arange(h) * mask.shape[0] / h).astype(int), mask.shape[0] - 1)
    xs = np.minimum((np.arange(w) * mask.shape[1] / w).astype(int), mask.shape[1] - 1)
    return mask[ys][:, xs]



def block_figure(maps, image: np.ndarray, stage: int, level: int, t: float) -> Image.Image:
    """The six maps of one DFR block, each a heatmap with a colour bar."""
    fig, axes = _plt().subplots(2, 3, figsize=(12, 7.2), dpi=80)
    fig.suptitle(f"DFR block, {LEVEL_NAMES[stage]} level {level} ({maps.width}x{maps.height}, "
                 f"{maps.channels} channels), t = {t:.2f}", fontsize=11)
    ax = axes.ravel()
    if maps.response is not None:
        r = maps.response
        _heat(ax[0], fig, r, f"spatial response map M_sr (range {r.min():.2f}-{r.max():.2f})", "magma", 0, 1)
        overlay = image.copy()
        m = _upsample(maps.mask, image.shape) > 0.5
        overlay[m] = 0.45 * overlay[m] + 0.55 * np.array([1.0, 0.15, 0.1])
        ax[1].imshow(np.clip(overlay, 0, 1))
        ax[1].set_title(f"mask M_sr >= t (red), coverage {100 * maps.coverage:.1f}%", fontsize=9)
        ax[1].set_xticks([]), ax[1].set_yticks([])
        _heat(ax[2], fig, maps.spatial.mean, "spatial-filter output (channel mean)", "coolwarm")
    else:
        for a in ax[:3]:
            a.axis("off")
            a.text(0.5, 0.5, "no spatial filter at this level", ha="center", va="center", fontsize=9)
    for a, summary, title in ((ax[3], maps.energy, "energy-attention weights (mean)"),
                              (ax[4], maps.identity, "identity branch (mean)"),
                              (ax[5], maps.fused, "fused block output (mean)")):
        if summary is None:
            a.axis("off")
            a.text(0.5, 0.5, "branch absent in this variant", ha="center", va="center", fontsize=9)
        else:
            _heat(a, fig, summary.mean, title, "viridis" if "energy" in title else "coolwarm")
    fig.tight_layout()
    return fig_to_image(fig)


def overview_figure(probe_maps, image: np.ndarray, t: float) -> Image.Image:
    """All 8 blocks: the response map with the mask's outline, coverage in the title."""
    keys = sorted(probe_maps)
    levels = max(k[1] for k in keys) + 1
    fig, axes = _plt().subplots(2, levels, figsize=(3.1 * levels, 6.2), dpi=72, squeeze=False)
    fig.suptitle(f"Spatial response maps of all DFR blocks (mask M_sr >= {t:.2f} outlined)", fontsize=11)
    for (stage, level) in keys:
        a = axes[stage - 1][level]
        m = probe_maps[(stage, level)]
        a.set_xticks([]), a.set_yticks([])
        if m.response is None:
            a.text(0.5, 0.5, "no spatial filter", ha="center", va="center", fontsize=9)
            a.set_title(f"S{stage} L{level}", fontsize=9)
            continue
        im = a.imshow(m.response, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        if 0 < m.mask.mean() < 1:
            a.contour(m.mask, levels=[0.5], colors="cyan", linewidths=0.8)
        a.set_title(f"S{stage} L{level} {m.width}x{m.height}: {100 * m.coverage:.0f}%", fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
    return fig_to_image(fig)



# ---------------------------------------------------------------- Inspect DFR

@dataclass
class InspectResult:
    before: Image.Image
    after: Image.Image
    block: Image.Image
    overview: Image.Image
    facts: str
    coverage: dict                 # (stage, level) -> coverage
    metrics: dict | None


def probe_run(restorer: Restorer, degraded: np.ndarray, t: float, channel: int = 0):
    """One forward at threshold t with the feature probe attached; the caller holds the task lock."""
    restorer.set_threshold(float(t))
    try:
        with FeatureProbe(restorer.model, channel=channel, pca=False) as probe:
            out = restorer.restore(degraded, tile=0)
        return out, probe.maps
    finally:
        restorer.set_threshold(restorer.default_t)


def inspect(image, task: str, stage: int = 1, level: int = 0, t: float = 0.75, reference=None,
            synthesize: bool = False, sigma: float = 25, rain: str = "light", blur_size: int = 21,
            seed: int = 0) -> InspectResult:
    """Re-run the model at threshold t (input at most INSPECT_MAX_SIDE px) and draw the maps of one block."""
    stage, level = int(stage), int(level)
    if stage not in (1, 2):
        raise DemoError(f"stage must be 1 or 2, got {stage}")
    prepared = prepare(image, task, reference, synthesize, sigma, rain, blur_size, seed, base.INSPECT_MAX_SIDE)
    restorer = model_for(task)
    depth = restorer.model.cfg.depth
    if not 0 <= level < depth:
        raise DemoError(f"level must lie in 0..{depth - 1}, got {level}")
    start = time.perf_counter()
    with task_lock(task):
        out, maps = probe_run(restorer, prepared.degraded, t)
    seconds = time.perf_counter() - start
    block = block_figure(maps[(stage, level)], prepared.degraded, stage, level, t)
    overview = overview_figure(maps, prepared.degraded, t)
    metrics = quality(out, prepared.clean, task)
    h, w = prepared.degraded.shape[:2]
    facts = f"t = {t:.2f} | {w}x{h} | forward {seconds:.2f} s"
    if metrics:
        facts += f" | PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}"
    coverage = {k: m.coverage for k, m in maps.items() if m.coverage is not None}
    return InspectResult(to_pil(prepared.degraded), to_pil(out), block, overview, facts, coverage, metrics)


def t_sweep(image, task: str, stage: int = 1, level: int = 0, reference=None, synthesize: bool = False,
            sigma: float = 25, rain: str = "light", blur_size: int = 21, seed: int = 0,
            ts=base.T_SWEEP) -> tuple[Image.Image, list[dict]]:
    """Mask coverage (chosen block and mean over blocks) and, with a reference, PSNR against t."""
    prepared = prepare(image, task, reference, synthesize, sigma, rain, blur_size, seed, base.INSPECT_MAX_SIDE)
    restorer = model_for(task)
    rows = []
    with task_lock(task):
        for t in ts:
            out, maps = probe_run(restorer, prepared.degraded, float(t))
            cov = [m.coverage for m in maps.values() if m.coverage is not None]
            chosen = maps[(int(stage), int(level))].coverage
            q = quality(out, prepared.clean, task)
            rows.append({"t": float(t), "coverage": chosen, "mean_coverage": float(np.mean(cov)) if cov else None,
                         "psnr": None if q is None else q["psnr"]})
    fig, ax = _plt().subplots(figsize=(7, 3.6), dpi=80)
    tt = [r["t"] for r in rows]
    if rows[0]["coverage"] is not None:
        ax.plot(tt, [100 * r["coverage"] for r in rows], "o-", label=f"coverage S{stage} L{level}")
        ax.plot(tt, [100 * r["mean_coverage"] for r in rows], "s--", label="mean coverage, all blocks")
    ax.set_xlabel("threshold t")
    ax.set_ylabel("mask coverage (%)")
    ax.axvline(restorer.default_t, color="grey", lw=0.8, ls=":")
    if rows[0]["psnr"] is not None:
        ax2 = ax.twinx()
        ax2.plot(tt, [r["psnr"] for r in rows], "^-", color="C3", label="PSNR")
        ax2.set_ylabel("PSNR (dB)", color="C3")
        ax2.legend(loc="lower right", fontsize=8)
        ax.set_title("mask coverage and PSNR against t", fontsize=10)
    else:
        ax.set_title("mask coverage against t (no clean reference: no PSNR)", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig_to_image(fig), rows

