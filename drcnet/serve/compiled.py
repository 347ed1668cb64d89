"""The engine's compiled graph: one ahead-of-time compiled forward for a batch of tiles, built in a background
process, trusted only once it agrees with the eager model on real photos, and kept on disk for the next start.

Why one graph: a compiled graph is specialised to one input shape and compiling one takes tens of seconds. With
statistics matched to training every input is a batch of `spec.batch` tiles of `spec.tile` px (a partial last
batch is filled with copies of its own real tiles, never zeros, so no sample sees padding), so one graph per
model serves every upload. A second graph serves the inspector: the model as a MapsOutput (t an input, every DFR
block's maps as outputs), so a probed pass at any t is one compiled forward too. Whole-image passes (the
paper's statistics) run eagerly.

Why ahead of time (torch.export + AOTInductor) in a child process: `torch.compile` in the serving process traces
the model in Python on every start (about 10 s even with inductor's cache warm) and holds the GIL while it does,
so a visitor's first requests waited behind it (up to 6.3x the eager pass, issue 34). The child process exports
and compiles the model at nice 19 on one thread, so it takes only what the requests leave; the serving process
just loads the finished package (a shared library: milliseconds) and never traces. The package and its check
are kept in graph_cache() (.cache/graphs in a clone), named by a hash of everything that shapes the graph (the
weights, the config with t, the tile spec, dtype, layout, device, the model's source code and torch's version),
so the next start serves the graph at once and any change builds a new one.

Why a check against eager: inductor's bf16 graph once drew a black blob on the derain example (36.5 dB against
eager, one pixel 201 grey levels off) while its outputs were finite. The graph is therefore trusted only after
it agrees with eager on tiles of real photos of its task (the app passes its examples; never random input):
at least AGREE_DB and no pixel more than AGREE_WORST grey levels off, else the task serves eagerly and
`reason` says why (a disagreement is remembered with the package, so it is not rebuilt at every start). A
request whose compiled output is not finite is served eagerly (and logged); the graph stays in use.

Why a private copy of the model: it shares the weight tensors with the eager model but has its own threshold t
(the trained one: the compiler bakes it into the graph as a constant) and no probe hooks; it is what the key
hashes and what the child process receives.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from itertools import chain
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from drcnet.core.device import lower_thread_priority
from drcnet.core.files import atomic_write
from drcnet.core.inductor import use_inductor_cache, why_not_compile
from drcnet.core.paths import graph_cache
from drcnet.model.inference import InferenceSpec
from drcnet.model.probes import MapsOutput
from drcnet.serve.tiling import tiles_for

log = logging.getLogger(__name__)

AGREE_DB = 45.0              # the compiled graph's output against eager on the check photos, PSNR over 8-bit
AGREE_WORST = 40             # ... and the largest difference of any pixel, in grey levels
COMPILE_NICE = 19            # the compiling process's niceness: it gets only what requests leave
BUILD_THREAD_NICE = 10       # the thread in this process that starts builds and loads their packages
CHECK_TILES = 2              # batches of tiles from the check photos compared with eager
PACKAGE_FORMAT = 2           # part of the key: a change in how packages are built makes new ones


# ---------------------------------------------------------------- the one background build thread

_jobs: queue.Queue = queue.Queue()
_worker: list[threading.Thread] = []
_worker_lock = threading.Lock()


def _work() -> None:
    lower_thread_priority(BUILD_THREAD_NICE)   # this thread only: it loads packages and runs their first call
    while True:          # builds run one at a time; this thread mostly waits for the building process
        job = _jobs.get()
        try:
            job()
        finally:
            _jobs.task_done()


def submit(job: Callable[[], None]) -> None:
    """Run `job` on the build thread (a daemon: a build in flight never holds up the process's exit)."""
    with _worker_lock:
        if not _worker or not _worker[0].is_alive():
            _worker[:] = [threading.Thread(target=_work, name="drcnet-compile", daemon=True)]
            _worker[0].start()
    _jobs.put(job)


def wait_for_compiles() -> None:
    """Block until every queued build has finished (or failed)."""
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


# ---------------------------------------------------------------- the package: built, checked, kept

def graph_key(model: nn.Module, example: torch.Tensor, device: torch.device) -> str:
    """A hash of everything that shapes the compiled graph: weights and buffers as stored, the config (t,
    min_region ...), the input's shape, dtype and layout, the device, the threads the kernels are written for,
    the source of every module class in the model, torch's version and the machine. Same key, same graph: the
    cached package may serve."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    cfg = model.cfg.to_dict() if hasattr(model, "cfg") else {}
    layout = "channels_last" if example.is_contiguous(memory_format=torch.channels_last) else "contiguous"
    shape = [PACKAGE_FORMAT, cfg, list(example.shape), str(example.dtype), layout, device.type,
             torch.get_num_threads(), torch.__version__, platform.machine(), sys.platform]
    h.update(json.dumps(shape, sort_keys=True, default=str).encode())
    for source in sorted({inspect.getsourcefile(type(m)) or "" for m in model.modules()}):
        if source and Path(source).is_file():
            h.update(Path(source).read_bytes())
    return h.hexdigest()[:24]


def compile_package(model: nn.Module, args: tuple, package: Path, threads: int) -> None:
    """torch.export the model for inputs shaped like `args`, then AOTInductor compiles it into `package`
    (a .pt2 holding a shared library, without the weights: load_package hands it the model's own tensors), its
    loops written for `threads` threads: inductor writes the serving process's thread count into its C++
    (measured: kernels compiled in a one-thread process made the graph 23 % slower on two cores)."""
    import torch._inductor.config as inductor_config

    use_inductor_cache()
    with torch.inference_mode():
        program = torch.export.export(model, args, strict=False)
    with inductor_config.patch({"cpp.threads": threads, "aot_inductor.package_constants_in_so": False}):
        torch._inductor.aoti_compile_and_package(program, package_path=str(package))


def load_package(package: Path, model: nn.Module) -> Callable:
    """The compiled forward of a package (milliseconds: it loads a shared library), running on the model's own
    weight tensors (user-managed constants, no copy): one copy of the weights in memory and in the CPU's caches
    for the graph and the eager model (the inspector's), and a package of 3 MB instead of 13 (lite)."""
    graph = torch._inductor.aoti_load_package(str(package))
    tensors = dict(chain(model.named_parameters(), model.named_buffers()))
    graph.load_constants({name: tensors[name] for name in graph.get_constant_fqns()}, check_full_update=True,
                         user_managed=True)
    return graph


def run_graph(graph: Callable, batch: torch.Tensor, device: torch.device, memory_format, extra: tuple = ()) -> tuple:
    """(out1, out2, ...) of a graph (or the eager model) on a batch and the `extra` inputs (the inspector's
    graph: its threshold t), as float32 on the CPU."""
    x = batch.to(device).contiguous(memory_format=memory_format)
    with torch.inference_mode():
        return tuple(o.float().cpu() for o in graph(x, *(e.to(device) for e in extra)))


def build_and_check(model: nn.Module, batches: list[torch.Tensor], device: torch.device, memory_format,
                    package: Path, threads: int | None = None, extra: tuple = ()) -> dict:
    """Compile `model` into `package` for `threads` threads (default: this process's), then compare the loaded
    package's image (out2) with the eager model's on `batches` (full batches of real tiles), with the `extra`
    inputs (the inspector's graph: the trained t). Returns the report, also written
    beside the package (<package>.json) when the check ran: {"db", "worst", "seconds"}, or {"error"} when
    compiling failed (not kept: the next start tries again)."""
    start = time.perf_counter()
    example = batches[0].to(device).contiguous(memory_format=memory_format)
    package.parent.mkdir(parents=True, exist_ok=True)
    partial = package.with_name(f"{package.stem}.{os.getpid()}.partial.pt2")
    try:
        compile_package(model, (example, *extra), partial, threads or torch.get_num_threads())
        os.replace(partial, package)
        graph = load_package(package, model)
        compiled = [run_graph(graph, b, device, memory_format, extra)[1] for b in batches]
    except Exception as error:     # noqa: BLE001 - any failure means: serve eagerly
        partial.unlink(missing_ok=True)
        return {"error": first_line(error)}
    eager = [run_graph(model, b, device, memory_format, extra)[1] for b in batches]
    db, worst = agreement(torch.cat(compiled).numpy(), torch.cat(eager).numpy())
    report = {"db": db, "worst": worst, "seconds": time.perf_counter() - start}
    atomic_write(report_path(package), lambda tmp: Path(tmp).write_text(json.dumps(report)))
    return report


def report_path(package: Path) -> Path:
    return package.with_suffix(".json")


def cached_report(package: Path) -> dict | None:
    """The check kept beside a package, if both are there."""
    try:
        return json.loads(report_path(package).read_text()) if package.is_file() else None
    except (OSError, ValueError):
        return None


def build_in_child(model: nn.Module, batches: list[torch.Tensor], device: torch.device, memory_format,
                   package: Path, t: float | None = None) -> dict:
    """build_and_check in a child process (`python -m drcnet.serve.compiled JOB`) at COMPILE_NICE on one thread,
    stopped (with the compilers it starts) while a request runs (BUILDS): the model and the tiles
    travel as safetensors files, the report comes back as the child's last line of output. A MapsOutput (the
    inspector's graph) travels as its model and is checked at threshold t."""
    from safetensors.torch import save_file

    from drcnet.model.checkpoint import save_checkpoint

    package.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_jobs(package.parent)
    with tempfile.TemporaryDirectory(dir=package.parent, prefix="job-") as tmp:
        tmp = Path(tmp)
        job = {"checkpoint": str(tmp / "model.safetensors"), "batches": str(tmp / "tiles.safetensors"),
               "device": str(device), "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
               "channels_last": memory_format == torch.channels_last, "package": str(package),
               "threads": torch.get_num_threads()}
        probed = isinstance(model, MapsOutput)
        job.update(probed=probed, channel=model.channel if probed else 0, t=t)
        save_checkpoint(job["checkpoint"], model.model if probed else model)
        save_file({str(i): b.contiguous() for i, b in enumerate(batches)}, job["batches"])
        (tmp / "job.json").write_text(json.dumps(job))
        env = dict(os.environ, OMP_NUM_THREADS="1", TORCHINDUCTOR_COMPILE_THREADS="1")
        with open(tmp / "out", "w") as out, open(tmp / "err", "w") as err:
            code = BUILDS.run([sys.executable, "-m", "drcnet.serve.compiled", str(tmp / "job.json")],
                              env=env, stdout=out, stderr=err)
        stdout, stderr = (tmp / "out").read_text(), (tmp / "err").read_text()
    if code != 0:
        lines = stderr.strip().splitlines() or [f"exit status {code}"]
        return {"error": f"the compiling process failed: {lines[-1][:200]}"}
    return json.loads(stdout.strip().splitlines()[-1])


STALE_JOB_S = 3600           # a job folder this old was left by a process that was killed mid-build


def remove_stale_jobs(folder: Path) -> None:
    import shutil

    for job in folder.glob("job-*"):
        if time.time() - job.stat().st_mtime > STALE_JOB_S:
            shutil.rmtree(job, ignore_errors=True)


class BuildPause:
    """The process groups of the builds now running, every one stopped (SIGSTOP, the C++ compilers it started
    included) while at least one request holds them: hold() before a request runs the model, release() after
    (counted, so overlapping requests keep them stopped until the last ends).

    The request's own thread stops them, synchronously. A build thread that polled a busy flag every 20 ms
    (the design before) could not: it needs the GIL to send the signal, and a compiled call holds the GIL for
    its whole 0.8 s (docs/design.md, section 7), so a build that was running when the request came ran on beside
    most compiled requests and slowed them from 0.8 to 1.0-1.5 s (docs/benchmark.md).
    Why stop rather than rely on niceness: on two cores even a nice-19 compiler slowed a compiled request from
    0.40 to about 0.6 s (every OpenMP wake-up of the request waits for the scheduler to preempt it)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._holds = 0
        self._groups: set[int] = set()

    def hold(self) -> None:
        with self._lock:
            self._holds += 1
            if self._holds == 1:
                self._signal(self._groups, signal.SIGSTOP)

    def release(self) -> None:
        with self._lock:
            self._holds -= 1
            if self._holds == 0:
                self._signal(self._groups, signal.SIGCONT)

    @property
    def held(self) -> bool:
        return self._holds > 0

    def run(self, command: list[str], **popen) -> int:
        """Run `command` in a process group of its own, stopped whenever the pause is held; its exit status."""
        proc = subprocess.Popen(command, process_group=0, **popen)
        with self._lock:
            self._groups.add(proc.pid)
            if self._holds:
                self._signal([proc.pid], signal.SIGSTOP)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._groups.discard(proc.pid)
                if self._holds and proc.poll() is None:      # interrupted while stopped: never leave it so
                    self._signal([proc.pid], signal.SIGCONT)

    @staticmethod
    def _signal(groups, sig: signal.Signals) -> None:
        for group in groups:
            try:
                os.killpg(group, sig)
            except ProcessLookupError:       # it has just ended
                pass


BUILDS = BuildPause()          # the app's requests hold it (drcnet/demo/activity.py)


def child_main(job_file: str) -> None:
    """The child process of build_in_child: niced, one thread; prints the report as its last line."""
    from safetensors.torch import load_file

    from drcnet.model.checkpoint import load_checkpoint

    lower_thread_priority(COMPILE_NICE)      # before any thread starts: they all inherit it
    end_with_parent()
    torch.set_num_threads(1)                 # its own runs (the check); the kernels are written for job["threads"]
    job = json.loads(Path(job_file).read_text())
    memory_format = torch.channels_last if job["channels_last"] else torch.contiguous_format
    device = torch.device(job["device"])
    model, _ = load_checkpoint(job["checkpoint"])
    model = model.eval().to(device, getattr(torch, job["dtype"]), memory_format=memory_format)
    extra = ()
    if job.get("probed"):
        model, extra = MapsOutput(model, job["channel"]), (torch.tensor(float(job["t"])),)
    tiles = load_file(job["batches"])
    batches = [tiles[str(i)] for i in range(len(tiles))]
    print(json.dumps(build_and_check(model, batches, device, memory_format, Path(job["package"]), job["threads"],
                                     extra)))


def end_with_parent() -> None:
    """Linux: this process gets SIGTERM when the process that started it exits (an app stopped mid-build must
    not leave a compiler running). Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)      # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


# ---------------------------------------------------------------- the graph of one model

class TileGraph:
    """The compiled forward of one model for a batch of tiles: loaded from graph_cache(), or built and checked
    by a child process that the build thread waits for.

    state: "idle" (nothing compiles before warm_up, so a Restorer made in a test costs nothing extra),
    "building", "ready", or "off" (`reason` says why: no toolchain, a compiler error, disagreement with eager).
    mode True compiles wherever asked; "auto" first checks why_not_compile. isolate False builds in this
    process instead of a child (tests that replace the compiler).

    probed: the inspector's graph: the model as a MapsOutput, so that it takes t as an input and returns every
    DFR block's maps with the image (what a FeatureProbe's hooks would take); it runs probed tiled passes at any
    t (accepts_probe), the plain graph runs the others."""

    isolate = True

    def __init__(self, model: nn.Module, device: torch.device, memory_format, spec: InferenceSpec,
                 mode: bool | str = "auto", probed: bool = False, name: str = ""):
        """name: what the log lines call the model (its task), so a start-up's log says whose graph it was."""
        self.device, self.memory_format, self.spec = device, memory_format, spec
        self.name = f"{name}: " if name else ""
        self.reason: str | None = why_not_compile(device) if mode == "auto" else None
        self.state = "off" if self.reason else "idle"
        # same weight and buffer tensors, own modules (so its own threshold t and no probe hooks)
        shared = {id(t): t for t in chain(model.parameters(), model.buffers())}
        self.model = copy.deepcopy(model, memo=shared)
        self.t = float(model.cfg.t)
        self.probed = probed
        if probed:
            self.model = MapsOutput(self.model)
        self.agreement: tuple[float, int] | None = None
        self.compile_seconds: float | None = None       # of the build, whenever and wherever it ran
        self.cached = False                             # whether the package came from graph_cache()
        self.eager_requests = 0        # requests served eagerly because the graph's output was not finite
        self._compiled = None
        self.ready_event = threading.Event()

    def fits(self, batch: torch.Tensor) -> bool:
        """The graph is ready and these tiles have its shape and fill at least half of its batch (else the eager
        model is faster)."""
        n, _, h, w = batch.shape
        return (self.state == "ready" and (h, w) == (self.spec.tile, self.spec.tile)
                and 2 * n >= self.spec.batch and n <= self.spec.batch)

    def accepts(self, eager: nn.Module, batch: torch.Tensor) -> bool:
        """Whether these tiles may run through the plain graph: they fit, and the eager model runs at the trained
        t without hooks."""
        return (not self.probed and self.fits(batch) and float(eager.cfg.t) == self.t and not has_hooks(eager))

    def accepts_probe(self, probe, batch: torch.Tensor) -> bool:
        """Whether these tiles of a probed, stitched pass may run through the inspector's graph (any t)."""
        return self.probed and self.fits(batch) and probe.stitching and probe.channel == self.model.channel

    def run(self, batch: torch.Tensor, t: float | None = None):
        """(out1, out2) for n <= spec.batch tiles (NCHW float32, CPU), or None: the caller then runs eagerly.
        The inspector's graph runs at threshold t and returns every block's maps after the images."""
        n = batch.shape[0]
        full = batch[[i % n for i in range(self.spec.batch)]]        # copies of real tiles, never zeros
        try:
            outputs = self._forward(full, t)
        except Exception as error:     # noqa: BLE001 - a failure at run time: eager from now on
            self._off(first_line(error))
            return None
        if not all(bool(torch.isfinite(o).all()) for o in outputs[:2]):    # the images (the maps: 80 more checks)
            self.eager_requests += 1
            log.warning("%sthe compiled graph returned non-finite values; this request is served eagerly",
                        self.name)
            return None
        return tuple(o[:n] for o in outputs)

    def warm_up(self, check_images, wait: bool = False) -> threading.Event:
        """Queue compiling and checking the graph on tiles of `check_images` (real photos of the model's task);
        with wait, block until done. Without a photo to check against, the graph is never trusted. The building
        process is stopped while a request holds BUILDS (the app's requests do)."""
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
            return (f"compiled {'inspector ' if self.probed else ''}graph ({self.spec.batch} x {self.spec.tile} px "
                    f"tiles; agrees with eager on the "
                    f"examples: {db:.1f} dB, worst pixel {worst} levels)")
        if self.state == "off":
            return f"eager model ({self.reason})"
        return "eager model (the compiled graph is being built)" if self.state == "building" else "eager model"

    def _forward(self, batch: torch.Tensor, t: float | None = None):
        return run_graph(self._compiled, batch, self.device, self.memory_format, self._extra(t))

    def _extra(self, t: float | None = None) -> tuple:
        """The inputs after the tiles: the inspector's graph takes t (default: the trained t)."""
        return (torch.tensor(float(self.t if t is None else t)),) if self.probed else ()

    def load_kept(self, check_images) -> bool:
        """Serve the package kept in graph_cache() now, in the calling thread, if there is one (milliseconds
        plus one run): the app does this before its page is served, so that a kept graph serves the very first
        request, warm. Returns whether the graph is ready; with nothing kept, warm_up builds it later.

        Either way the package loader's modules are imported here: their first import (torch._inductor, 1.6 s)
        held the GIL for up to 0.5 s at a time, and a graph built later was loaded beside a visitor's request
        (the first load took 4.8 s in a fresh process, 0.13 s with the modules imported; docs/benchmark.md)."""
        if self.state != "off":
            import torch._inductor  # noqa: F401 - imported now, before the page, not beside a request
        batches = check_batches(check_images, self.spec) if self.state == "idle" else []
        if batches:
            package = self._package(batches)
            report = cached_report(package)
            if report is not None:
                self.state, self.cached = "building", True
                self._serve(package, report, batches, first_call=True)
        return self.state == "ready"

    def _package(self, batches: list[torch.Tensor]) -> Path:
        example = batches[0].to(self.device).contiguous(memory_format=self.memory_format)
        return graph_cache() / f"{graph_key(self.model, example, self.device)}.pt2"

    def _build(self, batches: list[torch.Tensor]) -> None:
        """The cached package of this model if there is one, else build it (in a child process unless
        isolate is off), then serve it if its check agreed."""
        package = self._package(batches)
        report = cached_report(package)
        self.cached = report is not None
        if report is None:
            if self.isolate:
                report = build_in_child(self.model, batches, self.device, self.memory_format, package,
                                        self.t)
            else:
                report = build_and_check(self.model, batches, self.device, self.memory_format, package,
                                         extra=self._extra())
        self._serve(package, report, batches)

    def _serve(self, package: Path, report: dict, batches: list[torch.Tensor], first_call: bool = False) -> None:
        """Load the package and serve it if its report says it agreed with eager. first_call: run the loaded
        graph once here (its first call costs nearly twice a later one); not in the background, where that run
        collided with a visitor's request (measured: 1.46 s against about 0.9 s for the first graph request that
        pays it)."""
        if "error" in report:
            self._off(report["error"])
            return
        self.agreement, self.compile_seconds = (report["db"], report["worst"]), report["seconds"]
        db, worst = self.agreement
        if db < AGREE_DB or worst > AGREE_WORST:
            self._off(f"the compiled graph disagrees with eager on the examples: {db:.1f} dB, a pixel "
                      f"{worst} levels off")
            return
        try:
            self._compiled = load_package(package, self.model)
            if first_call:
                self._forward(batches[0])
        except Exception as error:     # noqa: BLE001 - a package that does not load or run: serve eagerly
            self._off(first_line(error))
            return
        log.info("%s%s the %d x %d px %s graph (%.1f dB against eager)", self.name,
                 "loaded" if self.cached else "built", self.spec.batch, self.spec.tile,
                 "inspector" if self.probed else "tile", db)
        self.state = "ready"
        self.ready_event.set()

    def _off(self, reason: str) -> None:
        if self.state != "off":
            self.state, self.reason = "off", reason
            log.warning("%sserving the eager model: %s", self.name, reason)
        self.ready_event.set()


if __name__ == "__main__":
    child_main(sys.argv[1])
