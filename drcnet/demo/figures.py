"""Matplotlib helpers shared by the tabs (render a figure to a PIL image, heatmaps with colour bars, save for
slides) and the small picture helpers beside them: text on images, the mark colour that stands out, percentages."""
from __future__ import annotations

import functools
import io

import matplotlib
from PIL import Image

matplotlib.use("Agg")                      # no display; figures are rendered to PIL images and closed


def plt():
    import matplotlib.pyplot as plt
    return plt


def fig_to_image(fig) -> Image.Image:
    """Render a matplotlib figure to a PIL image and close it (figures must not pile up in a server)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=fig.dpi)
    finally:
        plt().close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def heat(ax, fig, data, title, cmap="viridis", vmin=None, vmax=None):
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)


def save_figure(fig, stem: str, outputs) -> list:
    """Write a figure as PNG (at the figure's dpi) and PDF into the app's private output folder, close it, and
    return both paths: the download for slides. outputs: the registry's OutputFolder."""
    import time
    folder = outputs.folder()
    stem = f"{stem}_{time.time_ns() % 10**9}"          # two sessions' downloads never overwrite each other
    paths = [folder / f"{stem}.{ext}" for ext in ("png", "pdf")]
    try:
        for path in paths:
            fig.savefig(path, dpi=fig.dpi, bbox_inches="tight")
    finally:
        plt().close(fig)
    return paths


@functools.lru_cache(maxsize=None)
def font(size: int):
    """DejaVu Sans (matplotlib ships it) at `size` px; Pillow's built-in font where it cannot be found. Looked up
    once per size: the page's pictures write many labels."""
    from PIL import ImageFont
    try:
        from matplotlib import font_manager
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (OSError, ValueError):
        return ImageFont.load_default()


def label_lines(text: str, width: int, size: int = 15) -> list[str]:
    """`text` wrapped to lines that fit `width` px at font size `size` (about 0.6 size per character)."""
    import textwrap
    return textwrap.wrap(text, max(8, int(width / (0.6 * size)))) or [""]


def labelled(image: Image.Image, text: str, size: int = 15, lines: int = 1) -> Image.Image:
    """The image with `text` on a white strip under it, so a gallery's label never covers the picture (Gradio
    draws captions over the thumbnail and cuts long ones off). Long text is wrapped to the image's width; the
    strip has room for at least `lines` lines, so a row of pictures can share one height."""
    from PIL import ImageDraw
    typeface = font(size)
    wrapped = label_lines(text, image.width, size)
    strip = (size + 4) * max(lines, len(wrapped)) + 6
    out = Image.new("RGB", (image.width, image.height + strip), "white")
    out.paste(image.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(wrapped):
        width = draw.textlength(line, font=typeface)
        draw.text(((image.width - width) / 2, image.height + 3 + i * (size + 4)), line, fill="black", font=typeface)
    return out


# Candidate colours for drawing a mask on a photo; contrast_colour picks the one farthest from the photo's own.
MARK_COLOURS = {"cyan": (0.0, 1.0, 1.0), "lime": (0.2, 1.0, 0.0), "magenta": (1.0, 0.0, 1.0),
                "yellow": (1.0, 1.0, 0.0), "red": (1.0, 0.1, 0.1), "blue": (0.1, 0.3, 1.0)}


def contrast_colour(image) -> tuple[str, tuple]:
    """(name, rgb) of the MARK_COLOURS entry farthest from the photo's pixels: the largest 5th percentile of the
    distance to every pixel, so it stands out even from the photo's few pixels nearest to it (a red mark
    vanished on the astronaut's orange suit)."""
    import numpy as np
    px = np.asarray(image, np.float32).reshape(-1, 3)
    if len(px) > 20000:
        px = px[:: len(px) // 20000]
    best = max(MARK_COLOURS.items(),
               key=lambda kv: float(np.percentile(np.linalg.norm(px - np.array(kv[1]), axis=1), 5)))
    return best


def percent(fraction: float) -> str:
    """A share as a percentage with enough digits to be nonzero when it is (0.0004 -> "0.04%", not "0.0%")
    and below 100 when it is not all (0.99996 -> "99.996%")."""
    p = 100 * float(fraction)
    if p <= 0 or p >= 100:
        return f"{p:.0f}%"
    digits = 1
    while digits < 6 and (round(p, digits) == 0 or round(p, digits) == 100):
        digits += 1
    return f"{p:.{digits}f}%"
