"""Inspect DFR tab: the maps of one DFR block at a chosen threshold t, all blocks at once, and a t sweep."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from drcnet.demo.inputs import prepare, quality, to_pil
from drcnet.demo.messages import DemoError
from drcnet.demo.settings import InputSettings
from drcnet.demo.figures import contrast_colour, heat, plt, fig_to_image, percent, save_figure
from drcnet.serve.engine import Restorer
from drcnet.model.probes import FeatureProbe

LEVEL_NAMES = {1: "stage 1", 2: "stage 2"}
T_SWEEP = tuple(np.round(np.linspace(0.3, 1.0, 8), 3))


def _upsample(mask: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour resize of a level's map to the image size (levels are 1/2^i of the input)."""
    h, w = shape[:2]
    ys = np.minimum((np.arange(h) * mask.shape[0] / h).astype(int), mask.shape[0] - 1)
    xs = np.minimum((np.arange(w) * mask.shape[1] / w).astype(int), mask.shape[1] - 1)
    return mask[ys][:, xs]



def fitted_range(r: np.ndarray) -> tuple[float, float]:
    """The colour scale of a map: its own min..max (a trained M_sr often spans a few hundredths, e.g. 0.47-0.51,
    which a fixed 0..1 scale shows as one flat colour); a constant map gets a tiny span so imshow can draw it."""
    lo, hi = float(r.min()), float(r.max())
    return (lo, hi) if hi > lo else (lo - 1e-3, hi + 1e-3)


def t_at_quantile(response: np.ndarray, q: float) -> float:
    """The threshold that puts a fraction (1 - q) of this map's pixels in the mask (M_sr >= t): its q-quantile,
    rounded down to 1e-4 so that rounding never empties the mask. Computed in Python floats and rounded to 4
    decimals: a float32 map's quantile floored in float32 reached the page's t box as 0.494100004."""
    q = float(q)
    if not 0 <= q <= 1:
        raise DemoError(f"the quantile must lie in 0..1, got {q}")
    return round(math.floor(float(np.quantile(response, q)) * 1e4) / 1e4, 4)


def explain_mask(maps, t: float) -> str:
    """One sentence on what the mask does in this block at t, in the terms of drcnet/model/dfr.py's RegionNorm."""
    if maps.response is None:
        return "This level has no spatial filter, so t has no effect here."
    lo, hi = (float(maps.response.min()), float(maps.response.max()))
    span = f"M_sr spans {lo:.3f}-{hi:.3f}"
    if maps.coverage == 0 or maps.coverage == 1:
        where = "No pixel reaches" if maps.coverage == 0 else "Every pixel reaches"
        return (f"{where} t = {t:.3f} ({span}): the mask is {'empty' if maps.coverage == 0 else 'full'}, so the "
                "region normalisation has a single region, the whole map, and normalises each channel with the "
                "whole map's mean and variance (a plain instance normalisation). The threshold then changes "
                "nothing in this block; M_sr still shapes the output through gamma and beta. Set t at a quantile "
                "of the map to see where the block responds most.")
    return (f"{percent(maps.coverage)} of the pixels have M_sr >= t = {t:.3f} ({span}): the masked region and "
            "the rest are each normalised with their own mean and variance.")


def _histogram(ax, response: np.ndarray, t: float, coverage: float, fontsize=9):
    """The histogram of M_sr with t drawn on it; t outside the map's range is marked at the edge with an arrow."""
    ax.hist(response.ravel(), bins=60, color="0.35")
    lo, hi = fitted_range(response)
    ax.axvline(min(max(t, lo), hi), color="C3", lw=1.5, ls="-" if lo <= t <= hi else "--")
    if not lo <= t <= hi:
        ax.annotate(f"t = {t:.2f} {'>' if t > hi else '<'}", xy=(hi if t > hi else lo, 0.9),
                    xycoords=("data", "axes fraction"), color="C3", fontsize=fontsize - 1,
                    ha="right" if t > hi else "left")
    ax.set_xlim(lo, hi)
    ax.set_yticks([])
    ax.set_title(f"M_sr histogram, t = {t:.3f}: coverage {percent(coverage)}", fontsize=fontsize)


def mask_overlay(ax, image: np.ndarray, mask: np.ndarray, coverage: float) -> str:
    """The photo with the mask tinted and outlined in the colour that stands out most from this photo
    (contrast_colour), the outline drawn over a black one so it shows on light and dark areas alike. Returns the
    colour's name (it is in the title)."""
    name, colour = contrast_colour(image)
    overlay = np.asarray(image, np.float32).copy()
    overlay[mask] = 0.55 * overlay[mask] + 0.45 * np.array(colour)
    ax.imshow(np.clip(overlay, 0, 1))
    if 0 < mask.mean() < 1:
        ax.contour(mask, levels=[0.5], colors="black", linewidths=2.2)
        ax.contour(mask, levels=[0.5], colors=[colour], linewidths=1.0)
    ax.set_title(f"mask M_sr >= t (tinted and outlined {name}), coverage {percent(coverage)}", fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    return name


def _block_fig(maps, image: np.ndarray, stage: int, level: int, t: float, dpi: int = 80):
    """The maps of one DFR block, each a heatmap with a colour bar fitted to its range, the histogram of M_sr
    with t, and the caption of explain_mask: the figure behind both the page's picture and the slide download."""
    import textwrap
    fig, axes = plt().subplots(2, 4, figsize=(16, 7.6), dpi=dpi)
    fig.suptitle(f"DFR block, {LEVEL_NAMES[stage]} level {level} ({maps.width}x{maps.height}, "
                 f"{maps.channels} channels), t = {t:.3f}", fontsize=12)
    ax = axes.ravel()
    if maps.response is not None:
        r = maps.response
        lo, hi = fitted_range(r)
        heat(ax[0], fig, r, f"spatial response M_sr (scale {lo:.3f}-{hi:.3f})", "magma", lo, hi)
        mask_overlay(ax[1], image, _upsample(maps.mask, image.shape) > 0.5, maps.coverage)
        _histogram(ax[2], r, t, maps.coverage)
        heat(ax[3], fig, maps.spatial.mean, "spatial-filter output (channel mean)", "coolwarm")
    else:
        for a in ax[:4]:
            a.axis("off")
            a.text(0.5, 0.5, "no spatial filter at this level", ha="center", va="center", fontsize=9)
    for a, summary, title in ((ax[4], maps.energy, "energy-attention weights (mean)"),
                              (ax[5], maps.identity, "identity branch (mean)"),
                              (ax[6], maps.fused, "fused block output (mean)")):
        if summary is None:
            a.axis("off")
            a.text(0.5, 0.5, "branch absent in this variant", ha="center", va="center", fontsize=9)
        else:
            heat(a, fig, summary.mean, title, "viridis" if "energy" in title else "coolwarm")
    ax[7].axis("off")
    ax[7].text(0, 1, textwrap.fill(explain_mask(maps, t), 44), va="top", fontsize=9, transform=ax[7].transAxes)
    fig.tight_layout()
    return fig


def block_figure(maps, image: np.ndarray, stage: int, level: int, t: float) -> Image.Image:
    return fig_to_image(_block_fig(maps, image, stage, level, t))


def overview_figure(probe_maps, image: np.ndarray, t: float) -> Image.Image:
    """All blocks: each response map on its own fitted colour scale with the mask's outline, and under it the
    histogram of M_sr with t and the coverage it implies."""
    keys = sorted(probe_maps)
    levels = max(k[1] for k in keys) + 1
    fig, axes = plt().subplots(4, levels, figsize=(3.3 * levels, 10.5), dpi=72, squeeze=False,
                                gridspec_kw={"height_ratios": [3, 1.3, 3, 1.3]})
    fig.suptitle(f"Spatial response maps of all DFR blocks (each on its own colour scale; mask M_sr >= {t:.3f} "
                 "outlined) and their histograms with t", fontsize=11)
    for (stage, level) in keys:
        a, h = axes[2 * (stage - 1)][level], axes[2 * (stage - 1) + 1][level]
        m = probe_maps[(stage, level)]
        a.set_xticks([]), a.set_yticks([])
        if m.response is None:
            a.text(0.5, 0.5, "no spatial filter", ha="center", va="center", fontsize=9)
            a.set_title(f"S{stage} L{level}", fontsize=9)
            h.axis("off")
            continue
        lo, hi = fitted_range(m.response)
        im = a.imshow(m.response, cmap="magma", vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(im, ax=a, fraction=0.046, pad=0.03)
        if 0 < m.mask.mean() < 1:
            a.contour(m.mask, levels=[0.5], colors="cyan", linewidths=0.8)
        a.set_title(f"S{stage} L{level} {m.width}x{m.height}, range {lo:.3f}-{hi:.3f}", fontsize=8)
        _histogram(h, m.response, t, m.coverage, fontsize=8)
    fig.tight_layout()
    return fig_to_image(fig)


@dataclass
class InspectResult:
    before: Image.Image
    after: Image.Image
    block: Image.Image
    overview: Image.Image
    facts: str                     # includes explain_mask's caption for the chosen block
    coverage: dict                 # (stage, level) -> coverage
    metrics: dict | None


STATISTICS = {"matched": "matched to training", "whole": "whole image (paper)"}


def probe_run(restorer: Restorer, degraded: np.ndarray, t: float, channel: int = 0,
              statistics: str = "matched"):
    """(restored image, maps) at threshold t from ONE pass; the caller holds the task lock. With "matched"
    statistics (what Restore runs) every block's maps are stitched from the very tiles that made the output,
    blended with the same weights; with "whole" they come from the paper's single pass over the image. Either
    way the maps are at the image's resolution (drcnet/model/probes.py)."""
    if statistics not in STATISTICS:
        raise DemoError(f"statistics must be one of {sorted(STATISTICS)}, got {statistics!r}")
    with restorer.using(t=float(t), statistics=statistics):
        with FeatureProbe(restorer.model, channel=channel, pca=False) as probe:
            out = restorer.restore(degraded, probe=probe, **({"tile": 0} if statistics == "whole" else {}))
    return out, probe.maps


def prepare_small(registry, image, task, settings: InputSettings):
    """The input at most the registry's inspect_max_side px: what the inspector, Intra-CR and Compare work on."""
    return prepare(image, task, settings, max_side=registry.limits.inspect_max_side, cache=registry.inputs,
                   max_pixels=registry.limits.max_pixels)


def _probe(registry, image, task, stage, level, t, settings: InputSettings, statistics="matched"):
    """Validate, prepare (at most inspect_max_side px) and run one probed forward at t (None: the trained t):
    what inspect, the quantile control and the figure download share."""
    stage, level = int(stage), int(level)
    if stage not in (1, 2):
        raise DemoError(f"stage must be 1 or 2, got {stage}")
    prepared = prepare_small(registry, image, task, settings)
    restorer = registry.model_for(task)
    depth = restorer.model.cfg.depth
    if not 0 <= level < depth:
        raise DemoError(f"level must lie in 0..{depth - 1}, got {level}")
    start = time.perf_counter()
    t = restorer.default_t if t is None else float(t)
    with registry.lock(task):
        out, maps = probe_run(restorer, prepared.degraded, t, statistics=statistics)
        with restorer.using(statistics=statistics):
            ran = restorer.describe_statistics()
    return prepared, out, maps, time.perf_counter() - start, ran, t


def inspect(registry, image, task: str, stage: int = 1, level: int = 0, t: float | None = None,
            settings: InputSettings = InputSettings(), statistics: str = "matched") -> InspectResult:
    """Re-run the model at threshold t (None: the trained t; input at most inspect_max_side px) and draw the
    maps of one block.
    statistics: "matched" (the engine's default: tiles of the training patch, as Restore runs) or "whole"
    (over the whole image, as the paper): the facts line says which ran."""
    stage, level = int(stage), int(level)
    prepared, out, maps, seconds, ran, t = _probe(registry, image, task, stage, level, t, settings, statistics)
    block = block_figure(maps[(stage, level)], prepared.degraded, stage, level, t)
    overview = overview_figure(maps, prepared.degraded, t)
    metrics = quality(out, prepared.clean, task)
    h, w = prepared.degraded.shape[:2]
    facts = f"t = {t:.2f}{f' ({t:.4f})' if round(t, 2) != round(t, 4) else ''} | {w}x{h} | forward {seconds:.2f} s"
    if metrics:
        facts += f" | PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}"
    facts += f" | {ran}"
    facts += "\n\n" + f"**S{stage} L{level}**: " + explain_mask(maps[(stage, level)], t)
    coverage = {k: m.coverage for k, m in maps.items() if m.coverage is not None}
    return InspectResult(to_pil(prepared.degraded), to_pil(out), block, overview, facts, coverage, metrics)


SWEEP_QUANTILES = (0.01, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 0.99)


def sweep_values(response: np.ndarray | None, quantiles=SWEEP_QUANTILES) -> tuple[float, ...]:
    """The t values of a sweep: the block's own M_sr at these quantiles, so they span the map's range and lie
    dense where its values are (a trained M_sr often spans a few hundredths); the fixed T_SWEEP for a block
    without a spatial filter. Equal values (a nearly constant map) are kept once."""
    if response is None:
        return tuple(float(t) for t in T_SWEEP)
    return tuple(sorted({t_at_quantile(response, q) for q in quantiles}))


def t_sweep(registry, image, task: str, stage: int = 1, level: int = 0,
            settings: InputSettings = InputSettings(), ts=None) -> tuple[Image.Image, list[dict]]:
    """Mask coverage (chosen block and mean over blocks) and, with a reference, PSNR against t. ts: the t
    values; by default sweep_values of the block's M_sr at the model's own t (one forward more)."""
    prepared = prepare_small(registry, image, task, settings)
    restorer = registry.model_for(task)
    key = (int(stage), int(level))
    rows = []
    with registry.lock(task):
        if ts is None:
            _, maps = probe_run(restorer, prepared.degraded, restorer.default_t)
            if key not in maps:
                raise DemoError(f"no DFR block at stage {stage} level {level}")
            ts = sweep_values(maps[key].response)
        for t in ts:
            out, maps = probe_run(restorer, prepared.degraded, float(t))
            cov = [m.coverage for m in maps.values() if m.coverage is not None]
            q = quality(out, prepared.clean, task)
            rows.append({"t": float(t), "coverage": maps[key].coverage,
                         "mean_coverage": float(np.mean(cov)) if cov else None,
                         "psnr": None if q is None else q["psnr"]})
    return sweep_figure(rows, stage, level, restorer.default_t), rows


def sweep_figure(rows: list[dict], stage: int, level: int, default_t: float) -> Image.Image:
    """Coverage (and PSNR) against t, the legend under the axes so that it never covers a curve."""
    fig, ax = plt().subplots(figsize=(7.5, 4.2), dpi=80)
    tt = [r["t"] for r in rows]
    handles = []
    if rows[0]["coverage"] is not None:
        handles += ax.plot(tt, [100 * r["coverage"] for r in rows], "o-", label=f"coverage S{stage} L{level}")
        handles += ax.plot(tt, [100 * r["mean_coverage"] for r in rows], "s--", label="mean coverage, all blocks")
    ax.set_xlabel("threshold t (the block's M_sr at quantiles 1-99%)" if len(tt) > 1 else "threshold t")
    ax.set_ylabel("mask coverage (%)")
    outside = ""
    if min(tt) <= default_t <= max(tt):
        handles.append(ax.axvline(default_t, color="grey", lw=0.8, ls=":", label=f"model's t = {default_t:g}"))
    else:
        outside = f"; the model's t = {default_t:g} lies {'above' if default_t > max(tt) else 'below'} this range"
    if rows[0]["psnr"] is not None:
        ax2 = ax.twinx()
        handles += ax2.plot(tt, [r["psnr"] for r in rows], "^-", color="C3", label="PSNR")
        ax2.set_ylabel("PSNR (dB)", color="C3")
        ax.set_title(f"mask coverage and PSNR against t{outside}", fontsize=10)
    else:
        ax.set_title(f"mask coverage against t (no clean reference: no PSNR){outside}", fontsize=10)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig_to_image(fig)


def quantile_t(registry, image, task: str, stage: int = 1, level: int = 0, t: float | None = None,
               q: float = 0.9, settings: InputSettings = InputSettings()) -> float:
    """The t that puts the top (1 - q) of the chosen block's M_sr in the mask. The map is read at the current t:
    the first block's M_sr does not depend on t, later blocks' maps shift a little once t changes (their input
    passed through earlier masks), so their coverage at the new t is close to, not exactly, 1 - q."""
    _, _, maps, _, _, _ = _probe(registry, image, task, stage, level, t, settings)
    m = maps[(int(stage), int(level))]
    if m.response is None:
        raise DemoError(f"stage {stage} level {level} has no spatial filter: no response map to take t from")
    return t_at_quantile(m.response, q)


def inspect_figure(registry, image, task: str, stage: int = 1, level: int = 0, t: float | None = None,
                   settings: InputSettings = InputSettings(), statistics: str = "matched", dpi: int = 200) -> list:
    """The inspector's block figure for slides: one high-resolution PNG and a PDF (vector), titles and colour
    bars included. Re-runs the forward (one pass) rather than keeping every session's maps in memory."""
    stage, level = int(stage), int(level)
    prepared, _, maps, _, _, t = _probe(registry, image, task, stage, level, t, settings, statistics)
    fig = _block_fig(maps[(stage, level)], prepared.degraded, stage, level, t, dpi=dpi)
    return save_figure(fig, f"dfr_{task}_S{stage}L{level}_t{t:.3f}", registry.outputs)
