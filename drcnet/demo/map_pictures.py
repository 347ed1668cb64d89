"""The inspector's maps as pictures, drawn with colour tables straight into numpy arrays and PIL images.

matplotlib's figures were about 2 s of an /inspect (issue 34); these panels take milliseconds. The slides
download keeps matplotlib (drcnet/demo/inspect_slides.py) for its vector PDF. Every drawing function accepts a
map of any size: a block's map at its level's resolution, or stitched from tiles at the image's.

    rgb = colourise(response, "magma", lo, hi)                 # H x W x 3 uint8
    panel = map_panel(response, "spatial response M_sr", "magma")
    page = grid([[panel, ...], [...]])
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw

from drcnet.demo.figures import contrast_colour, font, label_lines, percent
from drcnet.eval.alignment import MARGIN, direction

PANEL = 280              # px: the side of one map on the page
TITLE_SIZE = 13          # px font sizes
SMALL_SIZE = 11
GAP = 10                 # px between panels

# Nine colours sampled evenly from matplotlib's colour maps of the same names, interpolated linearly to 256
# entries: indistinguishable on screen, and no matplotlib at drawing time.
ANCHORS = {
    "magma": [(0, 0, 4), (29, 17, 71), (81, 18, 124), (131, 38, 129), (183, 55, 121), (231, 82, 99),
              (252, 137, 97), (254, 196, 136), (252, 253, 191)],
    "viridis": [(68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140), (40, 174, 128),
                (94, 201, 98), (173, 220, 48), (253, 231, 37)],
    "coolwarm": [(59, 76, 192), (98, 130, 234), (141, 176, 254), (185, 208, 249), (221, 220, 220),
                 (245, 196, 172), (244, 152, 122), (221, 95, 75), (180, 4, 38)],
    "cividis": [(0, 34, 78), (26, 56, 111), (67, 78, 108), (97, 101, 111), (125, 124, 120), (155, 148, 118),
                (188, 174, 108), (222, 201, 88), (254, 232, 56)],
}
MARK = {"t": (214, 39, 40), "trained": (110, 110, 110), "toward": (44, 160, 44), "away": (214, 39, 40)}


@functools.lru_cache(maxsize=None)
def colour_table(name: str) -> np.ndarray:
    """256 x 3 uint8: the named colour map."""
    anchors = np.asarray(ANCHORS[name], np.float64)
    at = np.linspace(0, 255, len(anchors))
    return np.stack([np.interp(np.arange(256), at, anchors[:, c]) for c in range(3)], -1).round().astype(np.uint8)


def fitted_range(data: np.ndarray) -> tuple[float, float]:
    """The colour scale of a map: its own min..max (a trained M_sr often spans a few hundredths, e.g. 0.47-0.51,
    which a fixed 0..1 scale shows as one flat colour); a constant map gets a tiny span so it can be drawn."""
    lo, hi = float(np.min(data)), float(np.max(data))
    return (lo, hi) if hi > lo else (lo - 1e-3, hi + 1e-3)


def colourise(data: np.ndarray, name: str, lo: float, hi: float) -> np.ndarray:
    """H x W x 3 uint8: `data` scaled from lo..hi onto the colour table (values outside are clipped)."""
    index = np.clip((np.asarray(data, np.float64) - lo) / (hi - lo) * 255, 0, 255).round().astype(np.uint8)
    return colour_table(name)[index]


def fit(rgb: np.ndarray, side: int = PANEL) -> Image.Image:
    """The picture scaled so that its longer side is `side`: nearest-neighbour when enlarging (a level's map is a
    grid of cells, show them), box-averaged when shrinking (a map at the image's size)."""
    image = Image.fromarray(rgb)
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.NEAREST if scale >= 1 else Image.BOX)


def resize_mask(mask: np.ndarray, shape) -> np.ndarray:
    """A boolean mask at `shape` (rows, columns) by nearest neighbour."""
    h, w = shape
    rows = np.minimum((np.arange(h) * mask.shape[0] / h).astype(int), mask.shape[0] - 1)
    cols = np.minimum((np.arange(w) * mask.shape[1] / w).astype(int), mask.shape[1] - 1)
    return np.asarray(mask, bool)[rows][:, cols]


def edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer): the mask's pixels next to a pixel outside it, and the outside pixels next to the mask.
    An outline one pixel wide on either side of the edge, so that even a fragmented mask stays readable."""
    mask = np.asarray(mask, bool)
    padded = np.pad(mask, 1, mode="edge")
    neighbours = [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
    inner = mask & ~np.logical_and.reduce(neighbours)
    outer = ~mask & np.logical_or.reduce(neighbours)
    return inner, outer


def outlined(rgb: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """The picture with the mask's outline: a coloured line inside a black one, so it shows on light and dark
    areas alike. Nothing is drawn for an empty or a full mask (it has no edge)."""
    out = np.array(rgb, copy=True)
    mask = resize_mask(mask, out.shape[:2])
    if 0 < mask.mean() < 1:
        inner, outer = edges(mask)
        out[outer] = 0
        out[inner] = np.asarray(colour, np.float64).round().astype(np.uint8)
    return out


def tinted(photo: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """The photo (float H x W x 3 in [0, 1]) with the mask tinted 45 % in `colour` (0-1 RGB) and outlined."""
    mask = resize_mask(mask, photo.shape[:2])
    rgb = np.clip(np.asarray(photo, np.float32), 0, 1).copy()
    rgb[mask] = 0.55 * rgb[mask] + 0.45 * np.asarray(colour, np.float32)
    return outlined(np.round(rgb * 255).astype(np.uint8), mask, 255 * np.asarray(colour))


# ---------------------------------------------------------------------------------------------- panels

def text_block(lines: list[str], width: int, size: int = TITLE_SIZE, colour=(0, 0, 0)) -> Image.Image:
    """`lines`, each wrapped to `width`, on white."""
    wrapped = [part for line in lines for part in label_lines(line, width, size)]
    out = Image.new("RGB", (width, (size + 4) * len(wrapped) + 4), "white")
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(wrapped):
        draw.text((2, 2 + i * (size + 4)), line, fill=colour, font=font(size))
    return out


def stack(parts: list[Image.Image], width: int | None = None) -> Image.Image:
    """The parts one under another, left-aligned, on white."""
    width = width or max(p.width for p in parts)
    out = Image.new("RGB", (width, sum(p.height for p in parts)), "white")
    y = 0
    for part in parts:
        out.paste(part, (0, y))
        y += part.height
    return out


def colour_bar(name: str, lo: float, hi: float, width: int = PANEL) -> Image.Image:
    """A horizontal strip of the colour table with lo and hi written at its ends."""
    strip = np.repeat(colour_table(name)[np.linspace(0, 255, width).astype(int)][None], 8, axis=0)
    out = Image.new("RGB", (width, 8 + SMALL_SIZE + 6), "white")
    out.paste(Image.fromarray(strip), (0, 0))
    draw = ImageDraw.Draw(out)
    draw.text((0, 10), f"{lo:.3f}", fill="black", font=font(SMALL_SIZE))
    label = f"{hi:.3f}"
    draw.text((width - draw.textlength(label, font=font(SMALL_SIZE)), 10), label, fill="black", font=font(SMALL_SIZE))
    return out


def panel(title: list[str] | str, picture: Image.Image, footer: Image.Image | None = None,
          width: int = PANEL) -> Image.Image:
    """A titled picture (and an optional strip under it), `width` px wide."""
    title = [title] if isinstance(title, str) else title
    box = Image.new("RGB", (width, max(picture.height, 1)), "white")
    box.paste(picture, ((width - picture.width) // 2, 0))
    return stack([text_block(title, width), box] + ([footer] if footer is not None else []), width)


def map_panel(data: np.ndarray, title, name: str, mask: np.ndarray | None = None, mark=(0, 255, 255),
              scale: tuple[float, float] | None = None, side: int = PANEL) -> Image.Image:
    """A map in a colour table fitted to its own range (or `scale`), its outline of `mask` if given, the colour
    bar under it."""
    lo, hi = scale or fitted_range(data)
    rgb = colourise(data, name, lo, hi)
    if mask is not None:
        rgb = outlined(np.asarray(fit(rgb, side)), mask, mark)
        return panel(title, Image.fromarray(rgb), colour_bar(name, lo, hi, side), side)
    return panel(title, fit(rgb, side), colour_bar(name, lo, hi, side), side)


def note_panel(title: str, text: str, side: int = PANEL) -> Image.Image:
    """A panel that says why there is no picture (no spatial filter, truth unknown)."""
    return panel(title, text_block([text], side, SMALL_SIZE, (90, 90, 90)), None, side)


def histogram(response: np.ndarray, t: float, trained_t: float | None = None, width: int = PANEL,
              height: int = 90) -> Image.Image:
    """The histogram of M_sr on its own range with t (red) and the trained t (grey, when it differs) drawn on it;
    a t outside the range is marked at the edge with an arrow. The range's ends and median are written under it."""
    lo, hi = fitted_range(response)
    counts, _ = np.histogram(np.asarray(response).ravel(), bins=60, range=(lo, hi))
    out = Image.new("RGB", (width, height + SMALL_SIZE + 8), "white")
    draw = ImageDraw.Draw(out)
    top = max(int(counts.max()), 1)
    bar = width / len(counts)
    for i, n in enumerate(counts):
        draw.rectangle([i * bar, height - n / top * (height - 14), (i + 1) * bar - 1, height], fill=(90, 90, 90))

    def x_of(value):
        return (value - lo) / (hi - lo) * (width - 1)
    for value, colour in ((trained_t, MARK["trained"]), (t, MARK["t"])):
        if value is None or (colour == MARK["trained"] and trained_t == t):
            continue
        if lo <= value <= hi:
            draw.line([(x_of(value), 0), (x_of(value), height)], fill=colour, width=2)
        else:
            label = f"t = {value:.3f} {'>' if value > hi else '<'}" if colour == MARK["t"] else \
                f"trained {value:.2f} {'>' if value > hi else '<'}"
            x = width - draw.textlength(label, font=font(SMALL_SIZE)) - 2 if value > hi else 2
            draw.text((x, 0 if colour == MARK["t"] else SMALL_SIZE + 2), label, fill=colour, font=font(SMALL_SIZE))
    median = float(np.median(response))
    draw.line([(x_of(median), height), (x_of(median), height + 4)], fill="black", width=2)
    small = font(SMALL_SIZE)
    ends = [f"{lo:.3f}", f"{hi:.3f}"]
    draw.text((0, height + 5), ends[0], fill="black", font=small)
    draw.text((width - draw.textlength(ends[1], font=small), height + 5), ends[1], fill="black", font=small)
    label = f"{median:.3f}"
    x = x_of(median) - draw.textlength(label, font=small) / 2
    if draw.textlength(ends[0], font=small) + 4 < x and x + draw.textlength(label, font=small) + 4 < \
            width - draw.textlength(ends[1], font=small):           # the median's label only where it fits
        draw.text((x, height + 5), label, fill="black", font=small)
    return out


def framed(picture: Image.Image, colour, width: int = 3) -> Image.Image:
    """The picture inside a coloured frame (the overview marks blocks that point toward or away this way)."""
    out = Image.new("RGB", (picture.width + 2 * width, picture.height + 2 * width), tuple(colour))
    out.paste(picture, (width, width))
    return out


def grid(rows: list[list[Image.Image]], gap: int = GAP) -> Image.Image:
    """Rows of panels, each row as tall as its tallest panel, on white."""
    heights = [max(p.height for p in row) for row in rows]
    width = max(sum(p.width for p in row) + gap * (len(row) - 1) for row in rows)
    out = Image.new("RGB", (width + 2 * gap, sum(heights) + gap * (len(rows) + 1)), "white")
    y = gap
    for row, h in zip(rows, heights):
        x = gap
        for p in row:
            out.paste(p, (x, y))
            x += p.width + gap
        y += h + gap
    return out


# ------------------------------------------------------------------------------ the inspector's two pictures

DIRECTION_WORDS = {"toward": "points at it", "away": "points away", "chance": "near chance",
                   "unknown": "AUC undefined"}
OVERVIEW_PANEL = 190


def summary_panel(summary, title: str, name: str) -> Image.Image:
    if summary is None:
        return note_panel(title, "branch absent in this variant")
    return map_panel(summary.mean, title, name)


def block_view(maps, photo: np.ndarray, photo_mask: np.ndarray | None, stage: int, level: int, view,
               truth, auc: float | None, trained_t: float) -> Image.Image:
    """One DFR block: the mask on the photo, M_sr with the mask outlined, the truth map (or why it is unknown)
    with the block's AUC, the histogram of M_sr with t; then the spatial-filter output, the energy-attention
    weights, the identity branch and the fused output (channel means). view: inspect_tab.MaskView."""
    head = f"DFR block, stage {stage} level {level} ({maps.width}x{maps.height}, {maps.channels} channels)"
    if view is None:
        first = [note_panel("spatial response M_sr", "no spatial filter at this level: no M_sr, no mask")]
    else:
        name, colour = contrast_colour(photo)
        head += f": mask drawn at t = {view.t:.4f}, coverage {percent(view.coverage)}"
        first = [panel(["mask M_sr >= t on the photo", f"tinted and outlined {name}"],
                       fit(tinted(photo, photo_mask, colour))),
                 map_panel(maps.response, ["spatial response M_sr", "on its own colour scale"], "magma"),
                 panel([f"M_sr histogram: t = {view.t:.4f} (red)", f"trained t {trained_t:.3f} (grey)"],
                       histogram(maps.response, view.t, trained_t))]
    if truth.known:
        words = "" if auc is None else f"AUC {auc:.2f}: {DIRECTION_WORDS[direction(auc)]}"
        first.insert(2, map_panel(truth.map, ["truth: more degraded = brighter", words], "cividis"))
    else:
        first.insert(min(2, len(first)), note_panel("truth map", truth.what))
    second = [summary_panel(maps.spatial, "spatial-filter output (mean)", "coolwarm"),
              summary_panel(maps.energy, "energy-attention weights (mean)", "viridis"),
              summary_panel(maps.identity, "identity branch (mean)", "coolwarm"),
              summary_panel(maps.fused, "fused block output (mean)", "coolwarm")]
    body = grid([first, second])
    return stack([text_block([head], body.width, TITLE_SIZE + 2), body])


def overview_cell(key, maps, t: float, auc: float | None) -> Image.Image:
    stage, level = key
    title = [f"S{stage} L{level}  {maps.width}x{maps.height}"]
    if maps.response is None:
        return framed(note_panel(title[0], "no spatial filter", OVERVIEW_PANEL), (255, 255, 255))
    if auc is not None:
        title.append(f"AUC {auc:.2f}: {DIRECTION_WORDS[direction(auc)]}")
    cell = stack([map_panel(maps.response, title, "magma", maps.mask > 0.5, side=OVERVIEW_PANEL),
                  histogram(maps.response, t, width=OVERVIEW_PANEL, height=44)])
    frame = MARK.get(direction(auc), (255, 255, 255)) if auc is not None else (255, 255, 255)
    return framed(cell, frame)


def overview_view(probe_maps: dict, t: float, aucs: dict | None, truth) -> Image.Image:
    """All blocks, a row per stage: M_sr on its own colour scale with the mask at t outlined, the histogram with
    t under it; with a known truth, each block's AUC and a frame: green where it finds the degradation, red
    where it points away."""
    keys = sorted(probe_maps)
    rows = [[overview_cell(k, probe_maps[k], t, None if aucs is None else aucs.get(k)) for k in keys if k[0] == s]
            for s in sorted({k[0] for k in keys})]
    body = grid(rows)
    head = [f"Spatial response maps of all DFR blocks (each on its own colour scale; the mask M_sr >= {t:.3f} "
            "outlined in cyan) and their histograms with t (red)."]
    if truth.known:
        head.append(f"AUC of M_sr against the truth ({truth.what}); 0.5 is chance. Green frame: high responses "
                    f"mark the degradation (AUC >= {0.5 + MARGIN:.2f}); red frame: it points away (AUC <= "
                    f"{0.5 - MARGIN:.2f}), so M_sr >= t selects the wrong side.")
    else:
        head.append(f"Truth {truth.what}: no AUC.")
    return stack([text_block(head, body.width), body])
