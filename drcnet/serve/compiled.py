"""The engine's compiled graph: one `torch.compile`d forward for a batch of tiles, trusted only once it agrees
with the eager model on real photos.

Why one graph: a compiled graph is specialised to one input shape and compiling one takes tens of seconds. With
statistics matched to training every input is a batch of `spec.batch` tiles of `spec.tile` px (a partial last
batch is filled with copies of its own real tiles, never zeros, so no sample sees padding), so one graph per
model serves every upload. Whole-image passes (the paper's statistics) and feature probes run eagerly.

Why a check against eager: inductor's bf16 graph once drew a black blob on the derain example (36.5 dB against
eager, one pixel 201 grey levels off) while its outputs were finite. The graph is therefore trusted only after
it agrees with eager on tiles of real photos of its task (the app passes its examples; never random input):
at least AGREE_DB and no pixel more than AGREE_WORST grey levels off, else the task serves eagerly and
`reason` says why. A request whose compiled output is not finite is served eagerly (and logged); the graph
stays in use for the next one.

Why a private copy of the model: it shares the weight tensors with the eager model but has its own threshold t,
fixed when the graph is built (inductor treats it as a constant), and no probe hooks.

Why one low-priority background thread: compiles run one at a time, niced, with inductor's compile workers
kept in that thread, so requests in the first minutes are not held up behind them; the inductor cache in
.cache/inductor makes the next start compile in seconds.
"""
from __future__ import annotations

import copy
import logging
import queue
import sys
import threading
import time
from itertools import chain
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from drcnet.core.device import lower_thread_priority
from drcnet.core.inductor import use_inductor_cache, why_not_compile
from drcnet.model.inference import InferenceSpec
from drcnet.serve.tiling import tiles_for

log = logging.getLogger(__name__)

AGREE_DB = 45.0              # the compiled graph's output against eager on the check photos, PSNR over 8-bit
AGREE_WORST = 40             # ... and the largest difference of any pixel, in grey levels
COMPILE_NICE = 10            # the compile thread's niceness (Linux: per thread)
COMPILE_SWITCH_S = 1e-4      # the interpreter's switch interval while a graph is traced (default 5 ms)
CHECK_TILES = 2              # batches of tiles from the check photos compared with eager


# ---------------------------------------------------------------- the one background compile thread

_jobs: queue.Queue = queue.Queue()
_worker: list[threading.Thread] = []
_worker_lock = threading.Lock()


def _work() -> None:
    lower_thread_priority(COMPILE_NICE)      # this thread only (and the compilers it starts): requests keep theirs
    while True:
        job = _jobs.get()
        try:
            job()
        finally:
            _jobs.task_done()


def submit(job: Callable[[], None]) -> None:
    """Run `job` on the compile thread (a daemon: a compile in flight never holds up the process's exit)."""
    with _worker_lock:
        if not _worker or not _worker[0].is_alive():
            _worker[:] = [threading.Thread(target=_work, name="drcnet-compile", daemon=True)]
            _worker[0].start()
    _jobs.put(job)


def wait_for_compiles() -> None:
    """Block until every queued compile has finished (or failed)."""
    _jobs.join()


def first_line(error: Exception) -> str:
    """An exception as one short log line (inductor's messages run to pages)."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"


def has_hooks(model: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(PSNR in dB, largest difference in grey levels) of two float images in [0, 1], rounded to 8 bits."""
    a8, b8 = (np.rint(np.clip(v, 0, 1) * 255).astype(np.int16) for v in (a, b))
    mse = float(np.mean((a8 - b8).astype(np.float64) ** 2))
    return (float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)), int(np.abs(a8 - b8).max())


def check_batches(images, spec: InferenceSpec, batches: int = CHECK_TILES) -> list[torch.Tensor]:
    """Full batches of spec.tile px tiles cut from real photos (uint8 or float HxWx3), as the engine cuts them:
    what the graph is compiled on and checked against eager."""
    tiles = []
    for image in images:
        image = np.asarray(image)
        rgb = image.astype(np.float32) / 255 if image.dtype == np.uint8 else image.astype(np.float32)
        h, w = rgb.shape[:2]
        if min(h, w) >= spec.tile:
            tiles += [rgb[t.y:t.y + t.h, t.x:t.x + t.w] for t in tiles_for(h, w, spec.tile, spec.overlap)]
    if not tiles:
        return []
    x = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2)
    idx = [i % len(tiles) for i in range(spec.batch * batches)]
    return [x[idx[i:i + spec.batch]] for i in range(0, len(idx), spec.batch)]


# ---------------------------------------------------------------- the graph of one model

class TileGraph:
    """The compiled forward of one model for a batch of tiles, built and checked on the compile thread.

    state: "idle" (nothing compiles before warm_up, so a Restorer made in a test costs nothing extra),
    "building", "ready", or "off" (`reason` says why: no toolchain, an inductor error, disagreement with eager).
    mode True compiles wherever asked; "auto" first checks why_not_compile."""

    def __init__(self, model: nn.Module, device: torch.device, memory_format, spec: InferenceSpec,
                 mode: bool | str = "auto"):
        self.device, self.memory_format, self.spec = device, memory_format, spec
        self.reason: str | None = why_not_compile(device) if mode == "auto" else None
        self.state = "off" if self.reason else "idle"
        # same weight and buffer tensors, own modules (so its own threshold t and no probe hooks)
        shared = {id(t): t for t in chain(model.parameters(), model.buffers())}
        self.model = copy.deepcopy(model, memo=shared)
        self.t = float(model.cfg.t)
        self.agreement: tuple[float, int] | None = None
        self.compile_seconds: float | None = None
        self.eager_requests = 0        # requests served eagerly because the graph's output was not finite
        self._compiled = None
        self.ready_event = threading.Event()

    def accepts(self, eager: nn.Module, batch: torch.Tensor) -> bool:
        """Whether these tiles may run through the graph: it is ready, they have its shape, fill at least half of
        its batch (else the eager model is faster), and the eager model runs at the trained t without hooks."""
        n, _, h, w = batch.shape
        return (self.state == "ready" and (h, w) == (self.spec.tile, self.spec.tile)
                and 2 * n >= self.spec.batch and n <= self.spec.batch
                and float(eager.cfg.t) == self.t and not has_hooks(eager))

    def run(self, batch: torch.Tensor):
        """(out1, out2) for n <= spec.batch tiles (NCHW float32, CPU), or None: the caller then runs eagerly."""
        n = batch.shape[0]
        full = batch[[i % n for i in range(self.spec.batch)]]        # copies of real tiles, never zeros
        try:
            outputs = self._forward(full)
        except Exception as error:     # noqa: BLE001 - an inductor failure at run time: eager from now on
            self._off(first_line(error))
            return None
        if not all(bool(torch.isfinite(o).all()) for o in outputs):
            self.eager_requests += 1
            log.warning("the compiled graph returned non-finite values; this request is served eagerly")
            return None
        return tuple(o[:n] for o in outputs)

    def warm_up(self, check_images, wait: bool = False) -> threading.Event:
        """Queue compiling and checking the graph on tiles of `check_images` (real photos of the model's task);
        with wait, block until done. Without a photo to check against, the graph is never trusted."""
        if self.state == "idle":
            batches = check_batches(check_images, self.spec)
            if not batches:
                self._off("no photo of at least one tile to check the compiled graph against")
            else:
                self.state = "building"
                submit(lambda: self._build(batches))
        if wait:
            wait_for_compiles()
        return self.ready_event

    def describe(self) -> str:
        """One line for the facts: which path serves this model, and why."""
        if self.state == "ready":
            db, worst = self.agreement
            return (f"compiled graph ({self.spec.batch} x {self.spec.tile} px tiles; agrees with eager on the "
                    f"examples: {db:.1f} dB, worst pixel {worst} levels)")
        if self.state == "off":
            return f"eager model ({self.reason})"
        return "eager model (the compiled graph is being built)" if self.state == "building" else "eager model"

    def _forward(self, batch: torch.Tensor):
        x = batch.to(self.device).contiguous(memory_format=self.memory_format)
        with torch.inference_mode():
            return tuple(o.float().cpu() for o in self._compiled(x))

    def _build(self, batches: list[torch.Tensor]) -> None:
        # Tracing a graph is pure Python: it holds the GIL for seconds, and a request served meanwhile waits up to
        # the switch interval each time one of its eager ops hands the GIL back. A short interval while building
        # keeps those waits short (before this, /restore took 8.7 s in the first minute against 2.6 s steady).
        switch = sys.getswitchinterval()
        sys.setswitchinterval(COMPILE_SWITCH_S)
        try:
            self._build_and_check(batches)
        finally:
            sys.setswitchinterval(switch)

    def _build_and_check(self, batches: list[torch.Tensor]) -> None:
        start = time.perf_counter()
        try:
            use_inductor_cache()
            import torch._inductor.config as inductor_config
            inductor_config.compile_threads = 1          # compile in this (niced) thread, no worker pool
            self._compiled = torch.compile(self.model, dynamic=False)
            compiled = [self._forward(b) for b in batches]
        except Exception as error:     # noqa: BLE001 - any failure means: serve eagerly
            self._off(first_line(error))
            return
        self.compile_seconds = time.perf_counter() - start
        with torch.inference_mode():
            eager = [self.model(b.to(self.device).contiguous(memory_format=self.memory_format))[1].float().cpu()
                     for b in batches]
        self.agreement = agreement(torch.cat([c[1] for c in compiled]).numpy(), torch.cat(eager).numpy())
        db, worst = self.agreement
        if db < AGREE_DB or worst > AGREE_WORST:
            self._off(f"the compiled graph disagrees with eager on the examples: {db:.1f} dB, a pixel "
                      f"{worst} levels off")
            return
        log.info("compiled and checked the %d x %d px tile graph in %.0f s (%.1f dB against eager)",
                 self.spec.batch, self.spec.tile, self.compile_seconds, db)
        self.state = "ready"
        self.ready_event.set()

    def _off(self, reason: str) -> None:
        if self.state != "off":
            self.state, self.reason = "off", reason
            log.warning("serving the eager model: %s", reason)
        self.ready_event.set()
