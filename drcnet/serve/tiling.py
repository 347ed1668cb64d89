"""Cutting an image into overlapping tiles and blending the results back without seams.

Every tile of one image has the same size (the last tile of a row or column sits flush with the edge and
overlaps its neighbour more), so a group of tiles is one batch for the network and one shape for a compiled
graph. The blend weights are raised-cosine ramps whose up- and down-ramps add up to exactly one.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Tile(NamedTuple):
    y: int
    x: int
    h: int
    w: int
    weight: np.ndarray           # h x w float32 blend weight


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of `tile` px overlapping by at least `overlap`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]        # the last tile sits flush with the edge (it may overlap more)


def blend_ramp(size: int, overlap: int, ramp_in: bool, ramp_out: bool) -> np.ndarray:
    """1-D window: sin^2 ramp up over the first `overlap` px, cos^2 ramp down over the last, 1 between.

    The ramp down of one tile and the ramp up of the next add to exactly 1 (sin^2 + cos^2), and no weight is
    ever 0, so normalising by the summed weights is always safe. Image borders get no ramp."""
    w = np.ones(size, np.float32)
    if overlap > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap).astype(np.float32) ** 2
        if ramp_in:
            w[:overlap] = ramp
        if ramp_out:
            w[size - overlap:] = ramp[::-1]
    return w


def tiles_for(h: int, w: int, tile: int, overlap: int) -> list[Tile]:
    """Every tile of an h x w image (one tile, the whole image, when tile is 0 or the image fits in one)."""
    if not tile or (h <= tile and w <= tile):
        return [Tile(0, 0, h, w, np.ones((h, w), np.float32))]
    tiles = []
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    for y in ys:
        th = min(tile, h)
        wy = blend_ramp(th, overlap, y > 0, y + th < h)
        for x in xs:
            tw = min(tile, w)
            wx = blend_ramp(tw, overlap, x > 0, x + tw < w)
            tiles.append(Tile(y, x, th, tw, wy[:, None] * wx[None, :]))
    return tiles


def pixel_cost(h: int, w: int, tile: int, overlap: int) -> float:
    """How many pixels the network processes per image pixel with this tiling (1.0: none twice)."""
    return sum(t.h * t.w for t in tiles_for(h, w, tile, overlap)) / (h * w)


class Blender:
    """Accumulates weighted tile results into full-size images: add(tile, *results), then result()."""

    def __init__(self, h: int, w: int, channels: int = 3, outputs: int = 1):
        self.sums = [np.zeros((h, w, channels), np.float32) for _ in range(outputs)]
        self.weights = np.zeros((h, w, 1), np.float32)

    def add(self, tile: Tile, *results: np.ndarray) -> None:
        region = np.s_[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w]
        weight = tile.weight[..., None]
        for total, result in zip(self.sums, results):
            total[region] += result.reshape(tile.h, tile.w, -1) * weight
        self.weights[region] += weight

    def result(self) -> list[np.ndarray]:
        return [total / self.weights for total in self.sums]
