"""Inspect DFR tab: one DFR block's maps at a threshold t, every block at once, and a t sweep; where the photo's
degradation is known, how well each block's response M_sr points at it (the AUC of drcnet.eval.alignment).

The t knob: a block's M_sr often spans a few hundredths (0.508-0.633 on the astronaut) far from the trained
t = 0.75, so most values of t give an empty or a full mask. The page therefore spans the t slider over the chosen
block's M_sr (t_control), sets t from a mask coverage (quantile_t), and in the default view (at the trained t)
draws a block whose mask is empty or full at its DEFAULT_VIEW_QUANTILE instead, saying so (mask_view).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from drcnet.core.paths import REPO
from drcnet.demo.figures import fig_to_image, percent, plt, save_figure
from drcnet.demo.inputs import prepare, quality, to_pil
from drcnet.demo.inspect_slides import block_slide
from drcnet.demo.known_truth import Truth, degradation_truth
from drcnet.demo.map_pictures import block_view, overview_view
from drcnet.demo.messages import DemoError
from drcnet.demo.settings import InputSettings
from drcnet.eval.alignment import direction, response_auc, to_image, top_label
from drcnet.model.probes import FeatureProbe
from drcnet.serve.engine import Restorer

T_SWEEP = tuple(np.round(np.linspace(0.3, 1.0, 8), 3))
# A block whose mask is empty (or full) at the trained t is drawn at this quantile of its own M_sr in the default
# view: its top 10 %, the share of pixels docs/science.md labels as degraded.
DEFAULT_VIEW_QUANTILE = 0.9
SAME_T = 5e-5            # an explicit t this close to the trained t is the default view (the slider's 4 decimals)
SCIENCE = REPO / "docs" / "science.md"

MASK_NOTE = """**What the mask does.** Each DFR block computes a spatial response M_sr (a 7x7 convolution of its \
features' channel mean and maximum, through a sigmoid) and normalises the pixels where M_sr >= t apart from the \
rest. The paper's claim is that this mask selects the degraded region. Measured on the shipped models \
(docs/science.md: the ROC-AUC of M_sr against the true degradation map over 10 test photos; 0.5 is chance, \
1 means every degraded pixel responds more than every other, below 0.5 the *low* responses mark the damage):

- **Some blocks find the degradation**: derain's stage-2 levels 0 and 1 (AUC 0.69, 0.65), deblur's stage-2 \
  level 2 (0.64), denoise's stage-1 level 3 (0.71, on noise whose strength varies over the photo).
- **Some point the other way**: deblur's stage-1 levels 1 and 2 (0.28, 0.32) and denoise's stage-2 level 0 \
  (0.35) respond least where the damage is; there M_sr >= t selects the wrong side at any t.
- **Most masks are empty at the trained t = 0.75.** A block with an empty mask normalises its whole map as one \
  region (a plain instance normalisation); M_sr still shapes the output through gamma and beta.
- **The oracle**: the true mask in the best-aligned block gains derain 0.17 dB and the others nothing; in all \
  eight blocks it costs derain 3.1 dB. The models were trained with (nearly) empty masks and rely on them.
- Random weights reach similar AUCs in some blocks: training chose *which* blocks align, and with which sign.

On this page: the AUC of each block for this photo when its degradation is known (the overview frames blocks \
that find it in green and those that point away in red), the truth map beside the chosen block's M_sr, and a t \
slider that spans the chosen block's M_sr."""


def science_page() -> str:
    """docs/science.md, the measurements behind MASK_NOTE (shown on the page under the note)."""
    try:
        return SCIENCE.read_text()
    except OSError:
        return "docs/science.md is not part of this installation; it is in the project's repository."


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
                "nothing in this block; M_sr still shapes the output through gamma and beta. Move t within the "
                "block's range or set a mask coverage to see where the block responds most.")
    return (f"{percent(maps.coverage)} of the pixels have M_sr >= t = {t:.3f} ({span}): the masked region and "
            "the rest are each normalised with their own mean and variance.")


# ------------------------------------------------------------------------------------- the t knob

@dataclass
class MaskView:
    """The mask the block view draws (M_sr >= t), the t it is drawn at, and a sentence when that t is not the one
    the model ran at."""
    t: float
    mask: np.ndarray              # at the resolution of the block's maps
    coverage: float
    note: str = ""


def mask_view(maps, t: float, default: bool) -> MaskView | None:
    """The block's own mask at t; in the default view (t is the trained t), a mask that is empty or full there
    is drawn at the DEFAULT_VIEW_QUANTILE of this block's M_sr instead. Drawn from the M_sr of the same forward,
    not run again: the picture and the other blocks stay those of the trained t. None: no spatial filter."""
    if maps.response is None:
        return None
    if not default or 0 < maps.coverage < 1:
        return MaskView(t, maps.mask > 0.5, maps.coverage)
    shown = t_at_quantile(maps.response, DEFAULT_VIEW_QUANTILE)
    mask = maps.response >= shown
    state = "empty" if maps.coverage == 0 else "full"
    return MaskView(shown, mask, float(mask.mean()),
                    f"At the trained t = {t:.3f} this block's mask is {state}; the mask drawn is M_sr >= "
                    f"{shown:.4f}, the {DEFAULT_VIEW_QUANTILE:.0%} quantile of its M_sr ({percent(mask.mean())} of "
                    f"the pixels, where it responds most). The model ran at t = {t:.3f}.")


def t_control(maps, stage: int, level: int, shown_t: float, trained_t: float) -> dict:
    """The t slider for this block (gr.update's keywords): it spans the block's M_sr, so every position gives a
    partial mask, and its label gives the map's min, median and max and the trained t."""
    if maps.response is None:
        return {"minimum": 0.0, "maximum": 1.0, "value": shown_t,
                "label": f"Mask threshold t (S{stage} L{level} has no spatial filter)", "info": None}
    lo, med, hi = (float(v) for v in np.quantile(maps.response, [0, 0.5, 1]))
    low, high = math.floor(lo * 1e4) / 1e4, math.ceil(hi * 1e4) / 1e4
    if high <= low:
        low, high = low - 1e-4, high + 1e-4
    where = ("above this block's M_sr: there its mask is empty" if trained_t > hi else
             "below this block's M_sr: there its mask is full" if trained_t < lo else "inside this block's M_sr")
    return {"minimum": round(min(low, shown_t), 4), "maximum": round(max(high, shown_t), 4),
            "value": round(shown_t, 4),
            "label": f"Mask threshold t · S{stage} L{level}'s M_sr: min {lo:.3f} · median {med:.3f} · max {hi:.3f}",
            "info": f"trained t = {trained_t:.3f}, {where}"}


def block_aucs(maps: dict, truth: Truth, multiple: int) -> dict | None:
    """{(stage, level): AUC of M_sr against the truth map} (drcnet.eval.alignment.response_auc, the numbers of
    docs/science.md for this one photo); None when the truth is unknown."""
    if not truth.known:
        return None
    label = top_label(truth.map)
    return {key: response_auc(m.response, label, multiple) for key, m in maps.items() if m.response is not None}


def alignment_sentence(auc: float | None, truth: Truth) -> str:
    if not truth.known:
        return f"Truth: {truth.what}."
    if auc is None:
        return f"Truth: {truth.what}; this level has no M_sr to compare."
    meaning = {"toward": "high responses mark the degradation",
               "away": "it points away: low responses mark the degradation, so M_sr >= t selects the wrong side",
               "chance": "near chance (0.5)", "unknown": "undefined"}[direction(auc)]
    return f"AUC of M_sr against the truth ({truth.what}): **{auc:.2f}**, {meaning}."


# ------------------------------------------------------------------------------------- the handlers

@dataclass
class InspectResult:
    before: Image.Image
    after: Image.Image
    block: Image.Image
    overview: Image.Image
    facts: str                     # includes explain_mask's caption and the alignment for the chosen block
    coverage: dict                 # (stage, level) -> coverage of the mask the model ran with
    metrics: dict | None
    aucs: dict | None = None       # (stage, level) -> AUC of M_sr against the truth; None: truth unknown
    truth: str = ""                # what the truth map is, or why it is unknown
    view: MaskView | None = None   # the chosen block's mask as drawn
    t_control: dict | None = None  # the t slider for the chosen block (t_control)


STATISTICS = {"matched": "matched to training", "whole": "whole image (paper)"}


def probe_run(restorer: Restorer, degraded: np.ndarray, t: float, channel: int = 0,
              statistics: str = "matched", full_blocks=None):
    """(restored image, maps) at threshold t from ONE pass; the caller holds the task lock. With "matched"
    statistics (what Restore runs) every block's maps are stitched from the very tiles that made the output,
    blended with the same weights, at the image's resolution (drcnet/model/probes.py); with "whole" they come
    from the paper's single pass over the image, at each block's own resolution. full_blocks: the blocks whose
    every map is wanted (the others keep M_sr and the mask; None: all, see FeatureProbe)."""
    if statistics not in STATISTICS:
        raise DemoError(f"statistics must be one of {sorted(STATISTICS)}, got {statistics!r}")
    with restorer.using(t=float(t), statistics=statistics):
        with FeatureProbe(restorer.model, channel=channel, pca=False, full_blocks=full_blocks) as probe:
            if statistics == "whole":      # one forward: the maps at each block's own resolution
                out = restorer.restore(degraded, tile=0)
            else:
                out = restorer.restore(degraded, probe=probe)
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
        out, maps = probe_run(restorer, prepared.degraded, t, statistics=statistics, full_blocks={(stage, level)})
        with restorer.using(statistics=statistics):
            ran = f"{restorer.describe_statistics()} | {restorer.last_stats['path']}"
    return prepared, out, maps, time.perf_counter() - start, ran, t


def is_default(t: float | None, trained_t: float) -> bool:
    """The default view: no t given, or the trained t itself."""
    return t is None or abs(float(t) - trained_t) < SAME_T


def inspect(registry, image, task: str, stage: int = 1, level: int = 0, t: float | None = None,
            settings: InputSettings = InputSettings(), statistics: str = "matched") -> InspectResult:
    """Re-run the model at threshold t (None: the trained t, the default view; input at most inspect_max_side
    px) and draw the maps of one block and the overview of all; with a known degradation, each block's AUC.
    statistics: "matched" (the engine's default: tiles of the training patch, as Restore runs) or "whole"
    (over the whole image, as the paper): the facts line says which ran."""
    stage, level = int(stage), int(level)
    asked = t
    prepared, out, maps, seconds, ran, t = _probe(registry, image, task, stage, level, t, settings, statistics)
    model = registry.model_for(task).model
    trained_t, multiple, key = registry.model_for(task).default_t, model.cfg.multiple, (stage, level)
    truth = degradation_truth(prepared, task, settings)
    aucs = block_aucs(maps, truth, multiple)
    view = mask_view(maps[key], t, is_default(asked, trained_t))
    photo_mask = None if view is None else to_image(view.mask, prepared.degraded.shape[:2], multiple, "nearest") > 0.5
    auc = None if aucs is None else aucs.get(key)
    block = block_view(maps[key], prepared.degraded, photo_mask, stage, level, view, truth, auc, trained_t)
    overview = overview_view(maps, t, aucs, truth)
    metrics = quality(out, prepared.clean, task)
    h, w = prepared.degraded.shape[:2]
    facts = f"t = {t:.2f}{f' ({t:.4f})' if round(t, 2) != round(t, 4) else ''} | {w}x{h} | forward {seconds:.2f} s"
    if metrics:
        facts += f" | PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}"
    facts += f" | {ran}"
    facts += "\n\n" + f"**S{stage} L{level}**: " + explain_mask(maps[key], t)
    if view is not None and view.note:
        facts += " " + view.note
    facts += "\n\n" + alignment_sentence(auc, truth)
    quantile = getattr(model.cfg, "mask_quantile", None)
    if quantile is not None:
        facts += (f"\n\nThis model sets each block's t at the {quantile:.0%} quantile of its own M_sr (it was "
                  "trained so, docs/science.md): t does not move its masks.")
    coverage = {k: m.coverage for k, m in maps.items() if m.coverage is not None}
    control = t_control(maps[key], stage, level, t if view is None else view.t, trained_t)
    return InspectResult(to_pil(prepared.degraded), to_pil(out), block, overview, facts, coverage, metrics,
                         aucs, truth.what, view, control)


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
            _, maps = probe_run(restorer, prepared.degraded, restorer.default_t, full_blocks=())
            if key not in maps:
                raise DemoError(f"no DFR block at stage {stage} level {level}")
            ts = sweep_values(maps[key].response)
        for t in ts:
            out, maps = probe_run(restorer, prepared.degraded, float(t), full_blocks=())
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


def t_for_share(response: np.ndarray, share: float) -> float:
    """The t at which the mask M_sr >= t covers the share of this map closest to `share`. A map computed in bf16
    has few distinct values (0.004 apart near 0.5: 17 in the derain astronaut's s2 l0), and one value can hold a
    third of the pixels: the quantile alone (that tie included) then overshoots (41.9 % for 25 % there), so the
    next distinct value above it (the tie left out: 12.4 %) is taken where that is closer. Rounded down to 1e-4
    as t_at_quantile is."""
    low = t_at_quantile(response, 1.0 - share)                 # the tie included: coverage >= share
    above = response[response > np.quantile(response, 1.0 - share)]          # the values above the tie
    if above.size == 0:
        return low
    high = round(math.floor(float(above.min()) * 1e4) / 1e4, 4)
    if high <= low:
        return low
    return min((low, high), key=lambda t: abs(float((response >= t).mean()) - share))


def block_response(registry, image, task, stage, level, t, settings: InputSettings) -> np.ndarray:
    """The chosen block's M_sr at t (None: the trained t). Later blocks' maps shift a little once t changes
    (their input passed through earlier masks), so a t taken from this map gives close to, not exactly, the
    coverage it was taken for; the first block sees the input alone and gives it exactly."""
    _, _, maps, _, _, _ = _probe(registry, image, task, stage, level, t, settings)
    m = maps[(int(stage), int(level))]
    if m.response is None:
        raise DemoError(f"stage {stage} level {level} has no spatial filter: no response map to take t from")
    return m.response


def quantile_t(registry, image, task: str, stage: int = 1, level: int = 0, t: float | None = None,
               q: float = 0.9, settings: InputSettings = InputSettings()) -> float:
    """The t that puts the top (1 - q) of the chosen block's M_sr in the mask (ties at t included)."""
    return t_at_quantile(block_response(registry, image, task, stage, level, t, settings), q)


def coverage_t(registry, image, task: str, stage: int = 1, level: int = 0, t: float | None = None,
               coverage: float = 10.0, settings: InputSettings = InputSettings()) -> float:
    """The t at which the chosen block's mask covers about `coverage` % of its pixels (t_for_share)."""
    coverage = float(coverage)
    if not 0 < coverage < 100:
        raise DemoError(f"the mask coverage must lie between 0 and 100 %, got {coverage:g}")
    return t_for_share(block_response(registry, image, task, stage, level, t, settings), coverage / 100)


def inspect_figure(registry, image, task: str, stage: int = 1, level: int = 0, t: float | None = None,
                   settings: InputSettings = InputSettings(), statistics: str = "matched", dpi: int = 200) -> list:
    """The inspector's block figure for slides: one high-resolution PNG and a PDF (vector), titles and colour
    bars included. Re-runs the forward (one pass) rather than keeping every session's maps in memory."""
    stage, level = int(stage), int(level)
    prepared, _, maps, _, _, t = _probe(registry, image, task, stage, level, t, settings, statistics)
    block, multiple = maps[(stage, level)], registry.model_for(task).model.cfg.multiple
    photo_mask = None if block.mask is None else \
        to_image(block.mask, prepared.degraded.shape[:2], multiple, "nearest") > 0.5
    fig = block_slide(block, prepared.degraded, photo_mask, stage, level, t, explain_mask(block, t), dpi=dpi)
    return save_figure(fig, f"dfr_{task}_S{stage}L{level}_t{t:.3f}", registry.outputs)
