"""The demo's one piece of state, made once (app.py) and passed to every handler: the checkpoints, the loaded
models (one Restorer per file, replaced when the file changes), one lock per task (a model runs one request at a
time: the inspector runs it at another threshold t), the VGG, the prepared inputs and the output folder.
A task without its checkpoint is an error that names the file: the app never restores with a random network."""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from drcnet.core.paths import checkpoint_file, checkpoints_dir
from drcnet.core.tasks import TASKS
from drcnet.demo.activity import Activity
from drcnet.demo.files import content_digest
from drcnet.demo.inputs import PreparedCache
from drcnet.demo.messages import DemoError, check_task, hide_paths
from drcnet.demo.outputs import OutputFolder
from drcnet.demo.settings import Limits
from drcnet.model.checkpoint import CheckpointError, read_metadata
from drcnet.model.config import T_DEFAULT

log = logging.getLogger("drcnet.app")

BACKGROUND_TILE_BATCH = 1    # tiles per forward of a background copy: it yields to a request between forwards


class Registry:
    def __init__(self, folder=None, *, limits: Limits | None = None, device=None, precision=None, compile=None,
                 activity: Activity | None = None, tile_batch: int | None = None, background: bool = False):
        """folder None: checkpoints_dir() at each call ($DRCNET_CHECKPOINTS); device, precision, compile None:
        $DRCNET_DEVICE, $DRCNET_PRECISION, $DRCNET_COMPILE, read here, once. activity: shared with another
        registry (background_copy). tile_batch: tiles per forward instead of each checkpoint's spec.batch.
        background: start-up work's registry (background_copy): its models pause inside their forwards while a
        request runs (Activity.pause_inside)."""
        self._folder = None if folder is None else Path(folder)
        self.limits = limits or Limits.from_env()
        self.device = device or os.environ.get("DRCNET_DEVICE")
        self.precision = precision or os.environ.get("DRCNET_PRECISION")
        self.compile = compile or os.environ.get("DRCNET_COMPILE", "auto")
        self.inputs = PreparedCache()
        self.outputs = OutputFolder()
        self._models: dict[tuple[str, float], object] = {}
        self._models_lock = threading.Lock()
        self._locks = {task: threading.Lock() for task in TASKS}
        self._meta: dict[tuple[str, float], dict] = {}
        self._digests: dict[tuple[str, float], str] = {}
        self._vgg = None
        self.activity = activity or Activity()
        self.tile_batch = tile_batch
        self.background = background

    def background_copy(self, device=None) -> "Registry":
        """A registry for start-up work beside this one (the examples' results): the same checkpoints, limits,
        inputs, outputs and activity, but models and locks of its own, eager (compile off), on `device`, one tile
        per forward. A visitor's request then never waits on the lock of a background restore: it used to wait
        for a whole background pass (up to 0.7 s) before its own, 2.1x the eager pass in the first minute after
        a first start. The background instead pauses between its forwards and inside them while a request runs
        (Activity.yield_to_requests, Activity.pause_inside), and its model's threshold t is its own (the
        inspector changes t per request on the serving models)."""
        copy = Registry(self._folder, limits=self.limits, device=device or self.device, precision=self.precision,
                        compile="off", activity=self.activity, tile_batch=BACKGROUND_TILE_BATCH, background=True)
        copy.inputs, copy.outputs = self.inputs, self.outputs
        return copy

    @property
    def folder(self) -> Path:
        return self._folder if self._folder is not None else checkpoints_dir()

    def checkpoint(self, task: str) -> Path:
        return checkpoint_file(self.folder, check_task(task))

    def ablations(self, task: str) -> list[Path]:
        """<folder>/<task>-*.safetensors: ablation models (e.g. denoise-l1.safetensors) for Compare."""
        return sorted(self.folder.glob(checkpoint_file(".", f"{check_task(task)}-*").name))

    def metadata(self, path) -> dict:
        """The checkpoint's header, read once per (file, mtime)."""
        path = Path(path)
        key = (str(path.resolve()), path.stat().st_mtime)
        if key not in self._meta:
            self._meta[key] = read_metadata(path)
        return self._meta[key]

    def checkpoint_digest(self, task: str) -> str:
        """SHA-256 of the task's checkpoint file, computed once per (file, mtime): what the examples' stored results
        are keyed by, so a new checkpoint gets new results."""
        path = self.checkpoint(task)
        key = (str(path.resolve()), path.stat().st_mtime)
        if key not in self._digests:
            self._digests[key] = content_digest(path)
        return self._digests[key]

    def trained_t(self, task: str) -> float:
        """The mask threshold t the task's checkpoint was trained with; T_DEFAULT without a readable one."""
        try:
            return float((self.metadata(self.checkpoint(task)).get("config") or {}).get("t", T_DEFAULT))
        except (OSError, CheckpointError, DemoError, TypeError, ValueError):
            return T_DEFAULT

    def status(self) -> dict[str, dict]:
        """Per task: {"file", "present", "preset", "note"} read from the file header only (cheap). File names
        only: the page and the API answers never show the server's folders (a public Space must not)."""
        out = {}
        for task in TASKS:
            path = self.checkpoint(task)
            info = {"file": path.name, "present": path.is_file(), "preset": "", "note": ""}
            if info["present"]:
                try:
                    meta = self.metadata(path)
                    info["preset"] = meta.get("preset", "")
                    training = meta.get("training") or {}
                    if training.get("iterations"):
                        # a relay leg or burst that continued earlier weights logs only its own iterations:
                        # "206 iterations" alone undersold a deblur model of thousands (its card has them all)
                        info["note"] = (f"its last run: {training['iterations']} iterations, on earlier weights"
                                        if training.get("init") else f"{training['iterations']} iterations")
                except CheckpointError as e:
                    info["present"], info["note"] = False, hide_paths(str(e), self.folder)
            out[task] = info
        return out

    def restorer(self, path):
        """The cached Restorer of a checkpoint file (CUDA when present, else the engine's CPU path)."""
        from drcnet.core.inductor import compile_setting
        from drcnet.serve.engine import Restorer
        path = Path(path)
        try:
            key = (str(path.resolve()), path.stat().st_mtime)
        except FileNotFoundError:
            raise DemoError(f"no checkpoint {path.name}") from None
        with self._models_lock:
            restorer = self._models.get(key)
            if restorer is None:
                for old in [k for k in self._models if k[0] == key[0]]:     # a retrained file replaces the old
                    del self._models[old]
                restorer = Restorer.from_checkpoint(path, device=self.device, precision=self.precision,
                                                    compile=compile_setting(self.compile))
                if self.tile_batch and restorer.graph is None:      # a graph's batch is fixed: only eager ones
                    restorer.spec = dataclasses.replace(restorer.spec, batch=self.tile_batch)
                if self.background:
                    self.activity.pause_inside(restorer.model)
                self._models[key] = restorer
            return restorer

    def model_for(self, task: str):
        path = self.checkpoint(task)
        if not path.is_file():
            raise DemoError(f"The {task} model is not available: its checkpoint {path.name} is missing from the "
                            f"checkpoint folder (it may still be training). Pick another task or add the file.")
        return self.restorer(path)

    def lock(self, task: str):
        """The task's model lock, held while a request runs it; entering it also marks a request in flight, so
        that start-up work in the background waits (drcnet/demo/activity.py)."""
        return _Serving(self._locks[check_task(task)], self.activity)

    def vgg(self):
        """The frozen VGG19 up to relu3_1 (the committed slice), loaded once."""
        if self._vgg is None:
            from drcnet.train.losses import INTRA_LAYERS
            from drcnet.train.vgg import VGG19Features
            self._vgg = VGG19Features(INTRA_LAYERS)
        return self._vgg

    def loaded(self) -> list[Path]:
        with self._models_lock:
            return [Path(k[0]) for k in self._models]

    def available(self, tasks=TASKS) -> list[str]:
        """The tasks (of `tasks`, in that order) whose checkpoint is present."""
        return [task for task in tasks if self.checkpoint(task).is_file()]

    def load_all(self, tasks=TASKS) -> None:
        """Load every available task's model now, on the registry's device: on ZeroGPU at import, the way it
        expects (a model moved to CUDA at module scope is packed once and streamed onto the GPU of each call)."""
        for task in self.available(tasks):
            self.model_for(task)

    def load_kept_graphs(self, tasks=TASKS) -> list[str]:
        """Load every available task's model and the compiled graph kept on disk for it, now, and run each once
        (the graph, or the eager model where none is kept: a first call costs nearly twice a later one); a
        second or two. The app calls this before serving its page, so its first request is as fast as any.
        Returns the tasks whose graph is ready; the others build theirs in warm_up."""
        from drcnet.eval.safety import example_photos

        ready = []
        for task in self.available(tasks):
            model = self.model_for(task)
            if model.load_kept_graph(list(example_photos(task).values())):
                ready.append(task)
            else:
                model.warm_eager()
        return ready

    def warm_up(self, tasks=TASKS, after_each: Callable[[str], None] | None = None) -> threading.Thread:
        """Start-up hook, in the background, one task at a time in the order given (the task the page selects
        first, first): load its model, start its compiled graph (when compiling is on: loaded from the package
        cache, or built and checked against the eager model on the task's example photos by a niced child
        process, a minute or more), then after_each(task) (its examples' results: seconds), then wait for the
        graph, and only then the next task; then, task by task, the inspector's graphs. Requests meanwhile use
        the eager model; one task at a time keeps the first task's work from waiting behind the others'."""
        from drcnet.eval.safety import example_photos

        def one_at_a_time():
            with self.activity.background():         # niced, and waits while a visitor's request runs
                for task in self.available(tasks):
                    warm(task)
                for task in self.available(tasks):    # the inspector's graphs once every task restores fast
                    warm_inspector(task)

        def warm_inspector(task):
            try:
                self.activity.wait_until_idle()
                self.model_for(task).warm_up_inspector(list(example_photos(task).values()), wait=True)
                done(task, "the inspector's graph")
            except Exception:
                log.exception("building the inspector's graph of %s failed; it inspects eagerly", task)

        def warm(task):
            try:
                self.activity.wait_until_idle()
                model = self.model_for(task)
                # the graph first: a kept package loads in milliseconds; a new one builds in a niced child
                # process, stopped during requests, while the examples run here (after_each)
                model.warm_up(list(example_photos(task).values()))
                if after_each is not None:
                    after_each(task)
                    done(task, "the examples' results")
                self.activity.wait_until_idle()
                model.warm_up(wait=True)
                done(task, "the wait for its graph")
            except Exception:               # a start-up nicety: a failure must not end the others
                log.exception("warming up %s failed; it runs eagerly on its first request", task)

        def done(task, step):
            log.info("start-up: %s: %s done, %.1f s after the page", task, step, time.perf_counter() - started)

        started = time.perf_counter()      # the log lines' clock: warm_up is called once the page is served
        thread = threading.Thread(target=one_at_a_time, name="drcnet-warm-up", daemon=True)
        thread.start()
        return thread

    def clear(self) -> None:
        """Forget the loaded models and the prepared inputs (tests, or after replacing files by hand)."""
        with self._models_lock:
            self._models.clear()
        self._meta.clear()
        self.inputs.clear()


class _Serving:
    """A task's lock that also marks a request in flight (Registry.lock)."""

    def __init__(self, lock: threading.Lock, activity: Activity):
        self.lock, self.request = lock, activity.request()

    def __enter__(self):
        self.request.__enter__()
        self.lock.acquire()
        return self

    def __exit__(self, *exc):
        self.lock.release()
        self.request.__exit__(*exc)
