"""Requests first: background work at start-up (the examples' results, the compiled graphs) waits while a
visitor's request runs. On two cores any work beside a request slows it down: /restore took 3.5x the engine's
eager pass in the first seconds after start-up while the examples were computed beside it (drcnet/eval/app_timing.py).

    activity = Activity()
    with activity.request():          # a handler running the model (Registry.lock does this)
        ...
    activity.wait_until_idle()        # the warm-up, before each unit of work
    activity.pause_inside(restorer.model)     # its forwards then pause layer by layer while a request runs
    restorer.restore(photo, progress=activity.yield_to_requests)     # and between its forwards

Background work runs on models of its own (Registry.background_copy), so a request never waits for its lock.
The compiled graphs' builds run in processes of their own: a request stops them itself, from its own thread,
before it runs the model (drcnet.serve.compiled.BUILDS), and they go on when it ends.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time

from drcnet.core.device import lower_thread_priority
from drcnet.serve.compiled import BUILDS

QUIET_S = 1.0          # background work starts this long after the last request ended
BACKGROUND_NICE = 10   # the warm-up thread's niceness (Linux: per thread; the threads it starts inherit it)
BACKGROUND_SWITCH_S = 1e-4   # the interpreter's switch interval while background work runs (default 5 ms)


class Activity:
    def __init__(self, quiet: float = QUIET_S):
        self.quiet = quiet
        self._running = 0
        self._last_end = 0.0
        self._changed = threading.Condition()
        self._background = threading.local()

    def request(self):
        """Context manager marking a request in flight (not counted in a background thread)."""
        return _Request(self)

    def in_background(self) -> bool:
        return getattr(self._background, "on", False)

    @contextlib.contextmanager
    def background(self):
        """`with activity.background():` the calling thread does background work: its own model runs are not
        requests, it runs niced, and meanwhile the interpreter offers the GIL every BACKGROUND_SWITCH_S instead
        of every 5 ms, so a request's eager ops (hundreds per forward, each needing the GIL to be dispatched)
        are not held up behind the background thread's Python."""
        self._background.on = True
        lower_thread_priority(BACKGROUND_NICE)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(BACKGROUND_SWITCH_S)
        try:
            yield self
        finally:
            sys.setswitchinterval(switch)

    def busy(self) -> bool:
        """Whether a request is running now."""
        return self._running > 0

    def yield_to_requests(self, *_) -> None:
        """A pause point for background work between two forwards (it fits the engine's progress callback):
        in a background thread, while a visitor's request runs, wait until it is done (elsewhere it does nothing:
        a request's own restore calls it too)."""
        if self.in_background() and self.busy():
            self.wait_until_idle()

    def pause_inside(self, model) -> None:
        """Make every forward of `model` (a background copy's) a series of pause points: before each of its
        innermost modules it waits while a visitor's request runs (yield_to_requests). A background forward that
        a request found half done used to run to its end beside the request, its thread team against the
        request's on two cores (a cold start's first requests took 1.1-1.4 s in the engine against 0.95-1.0
        later); now it stops within one layer."""
        for module in innermost_modules(model):
            module.register_forward_pre_hook(lambda *_: self.yield_to_requests())

    def wait_until_idle(self) -> None:
        """Block until no request runs and the last one ended `quiet` seconds ago."""
        with self._changed:
            while True:
                left = None if self._running else self._last_end + self.quiet - time.monotonic()
                if left is not None and left <= 0:
                    return
                self._changed.wait(left)


def innermost_modules(model) -> list:
    """The modules of `model` that have no submodules (its layers: convolutions, activations, ...)."""
    return [module for module in model.modules() if not any(True for _ in module.children())]


class _Request:
    def __init__(self, activity: Activity):
        self.activity, self.counted = activity, False

    def __enter__(self):
        if not self.activity.in_background():
            self.counted = True
            with self.activity._changed:
                self.activity._running += 1
            BUILDS.hold()
        return self

    def __exit__(self, *exc):
        if self.counted:
            BUILDS.release()
            with self.activity._changed:
                self.activity._running -= 1
                self.activity._last_end = time.monotonic()
                self.activity._changed.notify_all()
