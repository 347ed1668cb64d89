"""Matplotlib helpers shared by the tabs: render a figure to a PIL image, heatmaps with colour bars."""
from __future__ import annotations

import io

from PIL import Image

def _plt():
    import matplotlib.pyplot as plt
    return plt


def fig_to_image(fig) -> Image.Image:
    """Render a matplotlib figure to a PIL image and close it (figures must not pile up in a server)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=fig.dpi)
    finally:
        _plt().close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _heat(ax, fig, data, title, cmap="viridis", vmin=None, vmax=None):
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)


def save_figure(fig, stem: str) -> list:
    """Write a figure as PNG (at the figure's dpi) and PDF into the app's private output folder, close it, and
    return both paths: the download for slides."""
    import time
    from . import output_folder
    folder = output_folder()
    stem = f"{stem}_{time.time_ns() % 10**9}"          # two sessions' downloads never overwrite each other
    paths = [folder / f"{stem}.{ext}" for ext in ("png", "pdf")]
    try:
        for path in paths:
            fig.savefig(path, dpi=fig.dpi, bbox_inches="tight")
    finally:
        _plt().close(fig)
    return paths
