"""The restoration engine: numpy image in, restored numpy image out, on the best device and precision at hand.

    restorer = Restorer.from_checkpoint("checkpoints/denoise.safetensors")
    clean = restorer.restore(noisy_uint8)           # same dtype and shape as the input

Large images go through overlapping tiles (default 256 px, the size the paper evaluated big images at: the
region and SimAM statistics depend on the size of what the network sees). By default ("matched" statistics) the
tiles are never larger than the patch the checkpoint was trained on: see STATISTICS below. Tiles are blended with a raised-cosine
window whose up- and down-ramps add up to exactly one, so the seams vanish; the output is accumulated on the CPU
in float32 and only one batch of tiles (TILE_BATCH) at a time lives on the device.

With compile=True or "auto" (off by default) whole images and tiles up to 512 px run through `torch.compile`d
graphs, one per 128-px size bucket, built in a background thread (`restorer.warm_up([(512, 512)])`); until a
bucket's graph is ready, and always for feature probes and a changed threshold, the eager model runs
(drcnet/serve/compiled.py; docs/design.md, "The compiled path").
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable

import numpy as np
import torch

from drcnet.core.device import pick_device, pick_precision
from drcnet.serve.compiled import BUCKET, COMPILE_MAX_SIDE, GraphSet
from drcnet.model.network import DRCNet, pad_to_multiple

Progress = Callable[[int, int], None]

STATISTICS = ("matched", "whole")
# "matched" (the default): restore in tiles of the patch the checkpoint was trained on (its metadata's
# training.patch), overlapping by a quarter of it and blended, so that every DFR block takes its normalisation
# statistics over the field it saw in training. "whole": one pass over the whole image (or the caller's tiles),
# the paper's behaviour. Why: a lite model trained on 128 px patches and run over a whole 512 px photo paints
# colour blocks over smooth regions (their per-channel variance is tiny at that scale); statistics taken over
# windows of the patch size (TLC) fixed clean photos but lost 1.4-2 dB at sigma 25, tiles of the patch gained
# everywhere (docs/design.md, "Statistics matched to training").
MATCHED_OVERLAP = 4        # tiles overlap by patch / MATCHED_OVERLAP
TILE_BATCH = 8             # eager tiles run this many at a time (one forward per batch; see Restorer._run)


# ---------------------------------------------------------------- image <-> float conversion

def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """HxW, HxWx1 or HxWx3, integer or float in [0, 1] -> float32 HxWx3 in [0, 1]."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)   # the model is RGB: replicate grey to 3 channels
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxW, HxWx1 or HxWx3 image, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / np.iinfo(image.dtype).max
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    raise ValueError(f"unsupported image dtype {image.dtype}")


def from_float_rgb(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    """float HxWx3 -> the dtype and shape of `like` (grey inputs get the channel mean back)."""
    out = np.clip(rgb, 0.0, 1.0)
    if like.ndim == 2 or like.shape[2] == 1:
        out = out.mean(axis=2)
        out = out if like.ndim == 2 else out[..., None]
    if np.issubdtype(like.dtype, np.integer):
        top = np.iinfo(like.dtype).max
        return np.rint(out * top).astype(like.dtype)
    return out.astype(like.dtype, copy=False)


# ---------------------------------------------------------------- tiling

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


def tiles_for(h: int, w: int, tile: int, overlap: int):
    """Yield (y, x, th, tw, weight) for every tile of an h x w image; weight is th x tw float32."""
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    for y in ys:
        th = min(tile, h)
        wy = blend_ramp(th, overlap, y > 0, y + th < h)
        for x in xs:
            tw = min(tile, w)
            wx = blend_ramp(tw, overlap, x > 0, x + tw < w)
            yield y, x, th, tw, wy[:, None] * wx[None, :]


# ---------------------------------------------------------------- statistics matched to training

def training_patch(meta: dict) -> int | None:
    """The patch size a checkpoint was trained on (its metadata's training.patch), or None if it does not say."""
    patch = (meta or {}).get("training", {}).get("patch")
    return int(patch) if patch else None


# ---------------------------------------------------------------- the engine

class Restorer:
    """Runs a DRCNet on numpy images: device and precision choice, tiling, grey and dtype handling.

    The Restorer takes the model over: it is put in eval mode and moved / converted in place."""

    def __init__(self, model: DRCNet, device=None, precision: str | None = None, meta: dict | None = None,
                 tile: int = 256, overlap: int = 32, compile: bool | str = False,
                 compile_max_side: int = COMPILE_MAX_SIDE, statistics: str = "matched"):
        """compile: False (eager only), True, or "auto" (only where inductor works here; else one log line).
        Compiled graphs cover buckets up to compile_max_side px per side; build them with warm_up().
        statistics: "matched" (the default) restores in tiles of the training patch, so the DFR statistics are
        taken over the field they were trained on (a model whose metadata records no patch runs "whole");
        "whole" runs whole images, or the requested tiles, as the paper does (see STATISTICS)."""
        if compile not in (False, True, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
        self.device = pick_device(device)
        self.precision = pick_precision(self.device, precision)
        self.dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        # channels_last lets oneDNN / cuDNN pick their fast bf16 kernels; fp32 keeps the plain layout.
        self.memory_format = torch.channels_last if self.precision == "bf16" else torch.contiguous_format
        self.model = model.eval().to(self.device, self.dtype, memory_format=self.memory_format)
        self.meta = dict(meta or {})
        # the threshold the weights were trained with (the config's; None for a model without DFR blocks)
        self.default_t = float(model.cfg.t) if hasattr(model, "cfg") else None
        self.tile, self.overlap = tile, overlap
        self.set_statistics(statistics)
        self.graphs = GraphSet(self.model, self.device, self.memory_format, compile, compile_max_side) \
            if compile else None
        self._compiled_runs = 0
        self.last_stats: dict = {}

    @classmethod
    def from_checkpoint(cls, path, device=None, precision: str | None = None, **kw) -> "Restorer":
        from drcnet.model.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path)
        return cls(model, device=device, precision=precision, meta=meta, **kw)

    def set_statistics(self, statistics: str) -> None:
        """"matched" or "whole" (see STATISTICS). A checkpoint that records no training patch stays "whole"."""
        if statistics not in STATISTICS:
            raise ValueError(f"statistics must be one of {STATISTICS}, got {statistics!r}")
        self.statistics = statistics if self.matched_patch else "whole"

    @property
    def matched_patch(self) -> int | None:
        """The training patch of the checkpoint (the tile of the "matched" statistics), None if unknown."""
        return training_patch(self.meta)

    def describe_statistics(self) -> str:
        """One line for the app's facts and the CLI: where the DFR statistics were taken."""
        if self.statistics == "matched":
            return (f"DFR statistics matched to training: {self.matched_patch} px tiles, "
                    f"{self.matched_patch // MATCHED_OVERLAP} px overlap")
        return "DFR statistics over the whole image (the paper's)"

    def field(self, tile: int, overlap: int) -> tuple[int, int]:
        """The tiling that a restore at (tile, overlap) runs with: "matched" caps the tile at the training patch
        (tile 0, "no tiling", included) and overlaps by at least a quarter of it; "whole" keeps the request."""
        if self.statistics != "matched":
            return tile, overlap
        patch = self.matched_patch
        tile = patch if not tile or tile > patch else tile
        return tile, min(max(overlap, patch // MATCHED_OVERLAP), tile // 2)

    def set_threshold(self, t: float) -> None:
        self.model.set_threshold(t)          # the eager model only: the compiled graphs keep theirs

    def reset_threshold(self) -> None:
        """Back to the trained threshold (default_t), e.g. after the inspector tried another t."""
        self.model.set_threshold(self.default_t)

    @contextlib.contextmanager
    def using(self, t: float | None = None, statistics: str | None = None):
        """`with restorer.using(t=0.6, statistics="whole"):` runs the eager model with another threshold or
        statistics setting and puts the trained ones back afterwards, whatever happens inside."""
        before = self.statistics
        try:
            if t is not None:
                self.set_threshold(t)
            if statistics is not None:
                self.set_statistics(statistics)
            yield self
        finally:
            if t is not None:
                self.reset_threshold()
            if statistics is not None:
                self.set_statistics(before)

    def warm_up(self, shapes=((512, 512),), wait: bool = False) -> None:
        """Build the compiled graphs that restoring images of these (h, w) sizes runs, in the background (wait:
        block until built): with "matched" statistics, the graph of the training patch's tile. Does nothing
        without compile."""
        if self.graphs is not None:
            if self.statistics == "matched":
                patch = self.matched_patch
                shapes = sorted({(min(h, patch), min(w, patch)) for h, w in shapes})
            self.graphs.warm_up(shapes, wait=wait)

    @torch.inference_mode()
    def restore(self, image: np.ndarray, *, tile: int | None = None, overlap: int | None = None,
                progress: Progress | None = None, return_stage1: bool = False):
        """Restore one image; returns out2 (or (out2, out1) with return_stage1) like the input in dtype and shape.

        tile=0 turns tiling off; an image no larger than the tile is processed whole."""
        tile = self.tile if tile is None else tile
        overlap = self.overlap if overlap is None else overlap
        if tile and 2 * overlap > tile:
            raise ValueError(f"overlap ({overlap}) must be at most half the tile ({tile})")
        tile, overlap = self.field(tile, overlap)
        start = time.perf_counter()
        rgb = to_float_rgb(np.asarray(image))
        h, w = rgb.shape[:2]
        if not tile or (h <= tile and w <= tile):
            tile, overlap = max(h, w), 0      # one tile covering the image, so one code path
        self._compiled_runs = 0
        out2, out1, n = self._restore_tiled(rgb, tile, overlap, progress, return_stage1)
        self.last_stats = dict(seconds=time.perf_counter() - start, tiles=n, device=str(self.device),
                               precision=self.precision, size=(h, w), compiled=self._compiled_runs,
                               statistics=self.statistics)
        restored = from_float_rgb(out2, image)
        return (restored, from_float_rgb(out1, image)) if return_stage1 else restored

    def _run(self, tiles: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Same-size HxWx3 float32 tiles through the network -> [(out1, out2)] as float32 CPU tensors, HxWx3.

        Eagerly, the tiles go through as one batch (TILE_BATCH at most, by the caller): the DFR block's many
        small element-wise passes cost per call, so a batch of 128 px tiles runs faster than the tiles one by
        one, and the per-sample statistics make each result independent of its batch. With a compiled graph
        ready for their bucket, each tile is padded up to the bucket the way the model pads to its own multiple
        (reflect at the bottom and right), run through the graph and cropped back."""
        h, w = tiles[0].shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(np.stack(tiles))).permute(0, 3, 1, 2)
        graph = self.graphs.graph_for(self.model, h, w) if self.graphs is not None else None
        outputs = None
        if graph is not None:
            runs = [self.graphs.run(graph, self._device_input(pad_to_multiple(x[i:i + 1], BUCKET)))
                    for i in range(len(tiles))]
            if all(r is not None for r in runs):
                outputs = [torch.cat(parts) for parts in zip(*runs)]
                self._compiled_runs += len(runs)
        if outputs is None:
            outputs = self.model(self._device_input(x))
        out1, out2 = (o[:, :, :h, :w].permute(0, 2, 3, 1).float().cpu() for o in outputs)
        return list(zip(out1, out2))

    def _device_input(self, x: torch.Tensor) -> torch.Tensor:
        # float32 in: the model casts to its own dtype and adds the image residuals in float32 (model.py)
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def _restore_tiled(self, rgb, tile, overlap, progress, want_stage1):
        h, w = rgb.shape[:2]
        tiles = list(tiles_for(h, w, tile, overlap))
        if len(tiles) == 1:          # a whole image: no blending, so no accumulators (three full-size passes saved)
            (out1, out2), = self._run([rgb])
            if progress is not None:
                progress(1, 1)
            return out2.numpy(), out1.numpy() if want_stage1 else None, 1
        acc2 = np.zeros((h, w, 3), np.float32)
        acc1 = np.zeros((h, w, 3), np.float32) if want_stage1 else None
        weights = np.zeros((h, w, 1), np.float32)
        for first in range(0, len(tiles), TILE_BATCH):       # every tile has the same size (tiles_for)
            group = tiles[first:first + TILE_BATCH]
            outs = self._run([rgb[y:y + th, x:x + tw] for y, x, th, tw, _ in group])
            for (y, x, th, tw, wt), (out1, out2) in zip(group, outs):
                wt = wt[..., None]
                acc2[y:y + th, x:x + tw] += out2.numpy() * wt
                if acc1 is not None:
                    acc1[y:y + th, x:x + tw] += out1.numpy() * wt
                weights[y:y + th, x:x + tw] += wt
            if progress is not None:
                progress(first + len(group), len(tiles))
        acc2 /= weights
        if acc1 is not None:
            acc1 /= weights
        return acc2, acc1, len(tiles)
