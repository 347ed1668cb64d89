"""The inspector's block figure for slides: matplotlib, so that the download has titles, colour bars and a vector
PDF. The page itself draws its maps without matplotlib (drcnet/demo/map_pictures.py)."""
from __future__ import annotations

import textwrap

import numpy as np

from drcnet.demo.figures import contrast_colour, heat, percent, plt
from drcnet.demo.map_pictures import fitted_range

LEVEL_NAMES = {1: "stage 1", 2: "stage 2"}


def histogram_axes(ax, response: np.ndarray, t: float, coverage: float, fontsize=9):
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


def block_slide(maps, image: np.ndarray, photo_mask: np.ndarray | None, stage: int, level: int, t: float,
                caption: str, dpi: int = 200):
    """The maps of one DFR block, each a heatmap with a colour bar fitted to its range, the mask on the photo
    (photo_mask: the block's mask at the photo's size), the histogram of M_sr with t, and `caption` (the page's
    explanation of the mask): a matplotlib figure, for save_figure."""
    fig, axes = plt().subplots(2, 4, figsize=(16, 7.6), dpi=dpi)
    fig.suptitle(f"DFR block, {LEVEL_NAMES[stage]} level {level} ({maps.width}x{maps.height}, "
                 f"{maps.channels} channels), t = {t:.3f}", fontsize=12)
    ax = axes.ravel()
    if maps.response is not None:
        r = maps.response
        lo, hi = fitted_range(r)
        heat(ax[0], fig, r, f"spatial response M_sr (scale {lo:.3f}-{hi:.3f})", "magma", lo, hi)
        mask_overlay(ax[1], image, photo_mask, maps.coverage)
        histogram_axes(ax[2], r, t, maps.coverage)
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
    ax[7].text(0, 1, textwrap.fill(caption, 44), va="top", fontsize=9, transform=ax[7].transAxes)
    fig.tight_layout()
    return fig
