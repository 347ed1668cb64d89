"""Compiled graphs for the engine: `torch.compile` (inductor) per input-size bucket, built in the background.

Why buckets: a compiled graph is specialised to one input shape and compiling one takes tens of seconds, so the
engine pads every whole image or tile up to the next multiple of BUCKET px per side (reflect, the model's own
pad_to_multiple) and crops the result back. A handful of graphs (128 ... 512 per side) then serve every upload.
An image that would fill less than half of its bucket runs eagerly instead: at about 2x the speed, the compiled
graph would not win back the padded pixels, and the padding would change the image statistics more (the region
and SimAM statistics are taken over the whole input, so padding is not free: see docs/design.md).

Why a private copy of the model: it shares the weight tensors with the eager model but has its own threshold t,
fixed when the graphs are built. Inductor treats t as a constant of the graph, and hooks on the eager model's
submodules would not fire inside a compiled graph, so the feature probes and the inspector's threshold changes
keep running on the eager model (GraphSet.graph_for says when the compiled one may run).

Why one background thread: compiles run one at a time (they share the CPU with the requests being served) and
never block a request; until a bucket's graph is ready the engine serves eagerly. Any failure (no C++ compiler,
an inductor error) logs one line and turns the compiled path off for that model: never an error for the user.
"""
from __future__ import annotations

import copy
import logging
import os
import queue
import shutil
import sys
import threading
import time
from itertools import chain
from typing import Callable

import torch
import torch.nn as nn

from drcnet.core.paths import INDUCTOR_CACHE

log = logging.getLogger(__name__)

BUCKET = 128                 # graphs exist for multiples of this per side ...
COMPILE_MAX_SIDE = 512       # ... up to this side: the app's whole-image limit (and its tile)


# ---------------------------------------------------------------- where compiling works

def find_cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU: $CXX, else g++ (inductor's own search order)."""
    for name in (os.environ.get("CXX"), "g++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def why_not_compile(device: torch.device) -> str | None:
    """None where inductor can compile for `device`, else the reason in a few words (compile="auto")."""
    if device.type == "cpu":
        if sys.platform not in ("linux", "darwin"):
            return f"inductor's CPU backend is not supported here ({sys.platform})"
        if find_cpp_compiler() is None:
            return "no C++ compiler found (set $CXX or install g++)"
        return None
    if device.type == "cuda":
        from torch.utils._triton import has_triton
        return None if has_triton() else "Triton is not installed"
    return f"inductor does not compile for {device.type}"


def use_inductor_cache() -> str:
    """Keep inductor's on-disk cache in the repository's .cache/inductor unless TORCHINDUCTOR_CACHE_DIR is set,
    so that the next start reuses the compiled kernels (a warm start compiles in seconds, not a minute)."""
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(INDUCTOR_CACHE))


def compile_setting(text: str | bool) -> bool | str:
    """"auto", or on / off in the usual spellings (1, true, yes / 0, false, no): e.g. $DRCNET_COMPILE."""
    value = str(text).strip().lower()
    if value == "auto":
        return "auto"
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no", ""):
        return False
    raise ValueError(f"compile must be auto, on or off, got {text!r}")


_warned: set[str] = set()


def warn_once(message: str) -> None:
    """One log line per process and reason, however many models (the app has one per task) run into it."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def reset_warnings() -> None:
    """Forget the reasons already logged (each is logged once per process): for tests that look for the line."""
    _warned.clear()


def bucket_shape(h: int, w: int) -> tuple[int, int]:
    return -(-h // BUCKET) * BUCKET, -(-w // BUCKET) * BUCKET


def has_hooks(model: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


# ---------------------------------------------------------------- the one background compile thread

_jobs: queue.Queue = queue.Queue()
_worker: list[threading.Thread] = []
_worker_lock = threading.Lock()


def _work() -> None:
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


# ---------------------------------------------------------------- the graphs of one model

class GraphSet:
    """The compiled graphs of one model, one per bucket, built on the compile thread.

    Nothing compiles before the first warm_up() (so a Restorer made in a test or a script costs nothing extra);
    after it, a bucket met for the first time is queued too and the request is served eagerly meanwhile.

    mode True compiles wherever asked; "auto" first checks why_not_compile. Either way a failure logs one line
    and leaves `failed` set, after which graph_for always answers None (eager)."""

    def __init__(self, model: nn.Module, device: torch.device, memory_format, mode: bool | str = "auto",
                 max_side: int = COMPILE_MAX_SIDE):
        self.device, self.memory_format, self.max_side = device, memory_format, max_side
        self.failed: str | None = why_not_compile(device) if mode == "auto" else None
        if self.failed:
            warn_once(f"torch.compile off, serving the eager model: {self.failed}")
        # same weight and buffer tensors, own modules (so its own threshold t and no probe hooks)
        shared = {id(t): t for t in chain(model.parameters(), model.buffers())}
        self.model = copy.deepcopy(model, memo=shared)
        self.t = float(model.cfg.t)
        self._compiled = None
        self._ready: dict[tuple[int, int], threading.Event] = {}
        self.compile_seconds: dict[tuple[int, int], float] = {}
        self._lock = threading.Lock()

    def graph_for(self, eager: nn.Module, h: int, w: int) -> Callable | None:
        """The compiled forward for an h x w input (padded to its bucket) when it is ready and may run, else None."""
        if self.failed:
            return None
        bucket = bucket_shape(h, w)
        if max(bucket) > self.max_side or 2 * h * w < bucket[0] * bucket[1]:
            return None                     # too large to have a graph, or mostly padding: eager is faster
        if float(eager.cfg.t) != self.t or has_hooks(eager):
            return None                     # the inspector's threshold or the feature probes: eager only
        done = self._ready.get(bucket)
        if done is None and self._ready:    # after a first warm_up, other buckets compile on first use
            done = self.warm_up([bucket])[0]
        return self._compiled if done is not None and done.is_set() and not self.failed else None

    def warm_up(self, shapes, wait: bool = False) -> list[threading.Event]:
        """Queue the graphs of these (h, w) shapes (rounded up to buckets) on the compile thread; with wait,
        block until they are built (or failed). Returns one Event per shape, set when its graph is ready."""
        events = []
        for h, w in shapes:
            bucket = bucket_shape(h, w)
            with self._lock:
                event = self._ready.get(bucket)
                if event is None:
                    event = self._ready[bucket] = threading.Event()
                    submit(lambda bucket=bucket: self._build(bucket))
            events.append(event)
        if wait:
            wait_for_compiles()
        return events

    def ready(self, bucket: tuple[int, int]) -> bool:
        """Whether the graph of this (h, w) bucket has been built."""
        event = self._ready.get(bucket)
        return event is not None and event.is_set()

    def run(self, forward: Callable, x: torch.Tensor):
        """The compiled forward on x, or None (after one log line) if it fails: the caller then runs eagerly.
        A graph whose output is not finite fails too: with torch 2.14.1 on this CPU the 128 x 128 bf16 graph of
        the lite model returns NaN where the eager model does not (found 2026-12-06; docs/design.md section 7),
        and a visitor must never get a NaN image."""
        try:
            outputs = forward(x)
        except Exception as error:     # noqa: BLE001 - any inductor failure means: serve eagerly from now on
            self._fail(error)
            return None
        if not all(bool(torch.isfinite(o).all()) for o in outputs):
            self._fail(RuntimeError("the compiled graph returned non-finite values"))
            return None
        return outputs

    def _build(self, bucket: tuple[int, int]) -> None:
        """Compile (first call) the graph of one bucket on a random input shaped like the engine's."""
        if self.failed:
            return
        start = time.perf_counter()
        try:
            if self._compiled is None:
                use_inductor_cache()
                limit = torch._dynamo.config.recompile_limit
                torch._dynamo.config.recompile_limit = max(limit, 64)   # one entry per bucket and model
                self._compiled = torch.compile(self.model, dynamic=False)
            x = torch.rand(1, 3, *bucket, generator=torch.Generator().manual_seed(0))
            with torch.inference_mode():
                self._compiled(x.to(self.device).contiguous(memory_format=self.memory_format))
        except Exception as error:     # noqa: BLE001 - see run()
            self._fail(error)
            return
        self.compile_seconds[bucket] = time.perf_counter() - start
        log.info("compiled the %dx%d graph in %.0f s", *bucket, self.compile_seconds[bucket])
        self._ready[bucket].set()

    def _fail(self, error: Exception) -> None:
        if not self.failed:
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            self.failed = f"{type(error).__name__}: {first_line}"
            warn_once(f"torch.compile failed, serving the eager model: {self.failed}")
