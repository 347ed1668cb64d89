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
