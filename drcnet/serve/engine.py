"""The restoration engine: numpy image in, restored numpy image out, on the best device and precision at hand.

    restorer = Restorer.from_checkpoint("checkpoints/denoise.safetensors")
    clean = restorer.restore(noisy_uint8)           # same dtype and shape as the input

How an image is cut is the checkpoint's inference spec (drcnet/model/inference.py), read once here: with
statistics "matched" (every shipped checkpoint) the image goes through overlapping tiles of about the training
patch, spec.batch tiles per forward, blended without seams (drcnet/serve/tiling.py); with "whole" (the
paper's) it runs in one pass, or in WHOLE_TILE px tiles when larger (to bound memory). The output is
accumulated on the CPU in float32; only one batch of tiles at a time lives on the device.

With compile=True or "auto" (off by default) the batches of tiles run through one ahead-of-time compiled graph,
built and checked against eager by a niced child process, or loaded from the graph cache
(`restorer.warm_up(example_photos)`); until it is
ready, and always for feature probes, a changed threshold or whole-image statistics, the eager model runs
(drcnet/serve/compiled.py; docs/design.md, "The compiled path").

A FeatureProbe passed to restore() sees every batch of tiles and where each tile sits, so the maps it stitches
are those of the very pass that made the output (drcnet/model/probes.py).
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable

import numpy as np
import torch

from drcnet.core.allocator import keep_freed_memory
from drcnet.core.device import pick_device, pick_precision
from drcnet.model.inference import STATISTICS, InferenceSpec
from drcnet.model.network import DRCNet
from drcnet.serve.compiled import TileGraph
from drcnet.serve.tiling import Blender, tiles_for

Progress = Callable[[int, int], None]

WHOLE_TILE = 512           # "whole" statistics: images up to this side run in one pass, larger in tiles of it
WHOLE_OVERLAP = 32         # (memory: the paper's single pass over a 4000 px photo would need tens of GB)


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


# ---------------------------------------------------------------- the engine

class Restorer:
    """Runs a DRCNet on numpy images: device and precision choice, tiling, grey and dtype handling.

    The Restorer takes the model over: it is put in eval mode and moved / converted in place."""

    def __init__(self, model: DRCNet, device=None, precision: str | None = None, meta: dict | None = None,
                 spec: InferenceSpec | None = None, compile: bool | str = False, statistics: str | None = None):
        """spec: how to cut images (default: the checkpoint's, InferenceSpec.from_meta(meta)).
        compile: False (eager only), True, or "auto" (only where inductor works here; else one log line); the
        graph is built by warm_up(). statistics: "matched" or "whole" (default: the spec's); a spec without a
        tile can only run "whole"."""
        if compile not in (False, True, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
        self.device = pick_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()         # a quarter of an eager forward on the CPU (drcnet/core/allocator.py)
        self.precision = pick_precision(self.device, precision)
        self.dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        # channels_last lets oneDNN / cuDNN pick their fast bf16 kernels; fp32 keeps the plain layout.
        self.memory_format = torch.channels_last if self.precision == "bf16" else torch.contiguous_format
        self.model = model.eval().to(self.device, self.dtype, memory_format=self.memory_format)
        self.meta = dict(meta or {})
        self.spec = spec or InferenceSpec.from_meta(self.meta)
        # the threshold the weights were trained with (the config's; None for a model without DFR blocks)
        self.default_t = float(model.cfg.t) if hasattr(model, "cfg") else None
        self.set_statistics(statistics or self.spec.statistics)
        compiles = compile and self.spec.statistics == "matched"
        task = self.meta.get("task", "")
        self.graph = TileGraph(self.model, self.device, self.memory_format, self.spec, compile,
                               name=task) if compiles else None
        # the inspector's graph: probed passes at any t, every block's maps as outputs (built after the plain one)
        self.probe_graph = TileGraph(self.model, self.device, self.memory_format, self.spec, compile,
                                     probed=True, name=task) if compiles else None
        self._compiled_runs = 0
        self.last_stats: dict = {}

    @classmethod
    def from_checkpoint(cls, path, device=None, precision: str | None = None, **kw) -> "Restorer":
        from drcnet.model.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path)
        return cls(model, device=device, precision=precision, meta=meta, **kw)

    def set_statistics(self, statistics: str) -> None:
        """"matched" or "whole" (see drcnet/model/inference.py). A spec without a tile stays "whole"."""
        if statistics not in STATISTICS:
            raise ValueError(f"statistics must be one of {STATISTICS}, got {statistics!r}")
        self.statistics = statistics if self.spec.statistics == "matched" else "whole"

    def describe_statistics(self) -> str:
        """One line for the app's facts and the CLI: where the DFR statistics were taken."""
        return (self.spec if self.statistics == "matched" else InferenceSpec()).describe()

    def describe_path(self, probed: bool = False) -> str:
        """One line for the facts: the compiled graph (probed: the inspector's) or the eager model, and why."""
        graph = self.probe_graph if probed else self.graph
        return graph.describe() if graph is not None else "eager model"

    def tiling(self, tile: int | None = None, overlap: int | None = None) -> tuple[int, int]:
        """(tile, overlap) of a restore: the spec's with "matched" statistics; with "whole", one pass up to
        WHOLE_TILE px, else tiles of it, unless the caller asks for other tiles (tile=0: one pass always)."""
        if self.statistics == "matched":
            if tile is not None or overlap is not None:
                raise ValueError("tile and overlap apply to whole-image statistics; with matched statistics the "
                                 "checkpoint's inference spec decides (pass spec= to the Restorer to change it)")
            return self.spec.tile, self.spec.overlap
        tile = WHOLE_TILE if tile is None else tile
        overlap = WHOLE_OVERLAP if overlap is None else overlap
        if tile and 2 * overlap > tile:
            raise ValueError(f"overlap ({overlap}) must be at most half the tile ({tile})")
        return tile, overlap

    def set_threshold(self, t: float) -> None:
        self.model.set_threshold(t)          # the eager model only: the compiled graph keeps its own

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

    def warm_up(self, check_images=(), wait: bool = False) -> None:
        """Build the compiled graph in the background (wait: block until built) and check it against the eager
        model on tiles of `check_images`, real photos of the model's task (the app passes its examples); it
        serves only if they agree. The build pauses while a request holds drcnet.serve.compiled.BUILDS (the
        app's requests do). Does nothing without compile."""
        if self.graph is not None:
            self.graph.warm_up(check_images, wait=wait)

    def warm_up_inspector(self, check_images=(), wait: bool = False) -> None:
        """warm_up for the inspector's graph (probed passes at any t): queued behind any other build."""
        if self.probe_graph is not None:
            self.probe_graph.warm_up(check_images, wait=wait)

    def load_kept_graph(self, check_images=()) -> bool:
        """Serve the compiled graphs kept on disk for this model now, if there are (TileGraph.load_kept), the
        inspector's too; whether the plain graph is ready. Does nothing without compile."""
        if self.graph is None:
            return False
        self.probe_graph.load_kept(check_images)
        return self.graph.load_kept(check_images)

    @torch.inference_mode()
    def warm_eager(self) -> None:
        """One eager forward of a batch of the spec's tiles, output dropped. A model's first forward costs nearly
        twice a later one (oneDNN primitives, the allocator): without a kept graph the app's first visitor paid
        it (1.05 s against about 0.85 s for the next requests after a first start), so the app pays it before
        its page instead. Nothing to do for whole-image statistics (every image is its own shape)."""
        if self.spec.statistics == "matched":
            x = torch.zeros(self.spec.batch, 3, self.spec.tile, self.spec.tile)
            self.model(x.to(self.device).contiguous(memory_format=self.memory_format))

    @torch.inference_mode()
    def restore(self, image: np.ndarray, *, tile: int | None = None, overlap: int | None = None,
                progress: Progress | None = None, return_stage1: bool = False, probe=None):
        """Restore one image; returns out2 (or (out2, out1) with return_stage1) like the input in dtype and shape.

        tile / overlap: only with "whole" statistics (see tiling()). probe: an entered FeatureProbe, told
        where every tile sits so that its maps are stitched from this pass."""
        tile, overlap = self.tiling(tile, overlap)
        start = time.perf_counter()
        rgb = to_float_rgb(np.asarray(image))
        h, w = rgb.shape[:2]
        tiles = tiles_for(h, w, tile, overlap)
        self._compiled_runs = 0
        out2, out1 = self._restore_tiles(rgb, tiles, progress, return_stage1, probe)
        self.last_stats = dict(seconds=time.perf_counter() - start, tiles=len(tiles), device=str(self.device),
                               precision=self.precision, size=(h, w), compiled=self._compiled_runs,
                               statistics=self.statistics, path=self._path_taken(probe is not None))
        restored = from_float_rgb(out2, image)
        return (restored, from_float_rgb(out1, image)) if return_stage1 else restored

    def _path_taken(self, probed: bool) -> str:
        """describe_path for the pass just run: a ready graph that ran none of it is not named as its path."""
        graph = self.probe_graph if probed else self.graph
        if graph is not None and graph.state == "ready" and not self._compiled_runs:
            return (f"eager model (not a pass for the compiled graph: it runs batches of "
                    f"{(self.spec.batch + 1) // 2}-{self.spec.batch} tiles of {self.spec.tile} px"
                    f"{'' if probed else ' at the trained t'})")
        return self.describe_path(probed)

    def _batch_size(self, tiles) -> int:
        """Tiles per forward: the spec's batch for tiles of the spec, one at a time for larger (whole) ones."""
        t = tiles[0]
        return self.spec.batch if self.spec.tile and max(t.h, t.w) <= self.spec.tile else 1

    def _restore_tiles(self, rgb, tiles, progress, want_stage1, probe):
        h, w = rgb.shape[:2]
        if len(tiles) == 1 and probe is None:   # a whole image: no blending, so no accumulators
            out1, out2 = self._run(rgb[None])
            if progress is not None:
                progress(1, 1)
            return out2[0], out1[0] if want_stage1 else None
        blend = Blender(h, w, outputs=2 if want_stage1 else 1)
        size = self._batch_size(tiles)
        for first in range(0, len(tiles), size):          # every tile has the same size (tiles_for)
            group = tiles[first:first + size]
            if probe is not None:
                probe.place(group, (h, w))
            out1, out2 = self._run(np.stack([rgb[t.y:t.y + t.h, t.x:t.x + t.w] for t in group]), probe)
            for i, t in enumerate(group):
                blend.add(t, out2[i], *((out1[i],) if want_stage1 else ()))
            if progress is not None:
                progress(first + len(group), len(tiles))
        results = blend.result()
        return results[0], results[1] if want_stage1 else None

    def _run(self, tiles: np.ndarray, probe=None) -> tuple[np.ndarray, np.ndarray]:
        """N same-size HxWx3 float32 tiles through the network -> (out1, out2), NxHxWx3 float32 numpy.

        The tiles go through as one batch: the DFR block's many small element-wise passes cost per call, so a
        batch runs faster than the tiles one by one, and the per-sample statistics make each result independent
        of its batch. The compiled graph runs them when it is ready and accepts them (TileGraph.accepts); a
        probed batch runs through the inspector's graph at the model's current t, which hands the probe every
        block's maps (TileGraph.accepts_probe), else eagerly, where the probe's hooks take them."""
        x = torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2)
        outputs = None
        if probe is not None:
            if self.probe_graph is not None and self.probe_graph.accepts_probe(probe, x):
                outputs = self.probe_graph.run(x, float(self.model.cfg.t))
                if outputs is not None:
                    probe.take(self.probe_graph.model, outputs[2:])
                    outputs = outputs[:2]
                    self._compiled_runs += 1
        elif self.graph is not None and self.graph.accepts(self.model, x):
            outputs = self.graph.run(x)
            self._compiled_runs += outputs is not None
        if outputs is None:
            # float32 in: the model casts to its own dtype and adds the image residuals in float32 (network.py)
            outputs = self.model(x.to(self.device).contiguous(memory_format=self.memory_format))
        out1, out2 = (o.permute(0, 2, 3, 1).float().cpu().numpy() for o in outputs)
        return out1, out2
