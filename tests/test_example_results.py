"""The examples' results, ready before anyone clicks: computed by the start-up warm-up, one task at a time (the
page's first task first; its examples before its compiled graphs), stored on disk under their checkpoint's
digest, so a new checkpoint gets new results."""
from __future__ import annotations

import logging
import sys
import threading

import pytest
import torch

from drcnet import demo as D
from drcnet.demo.activity import BACKGROUND_SWITCH_S
from drcnet.demo.example_results import NOTE
from drcnet.model.checkpoint import save_checkpoint

from conftest import tiny_checkpoints


@pytest.fixture
def ckdir(tmp_path, monkeypatch):
    folder = tmp_path / "ck"
    folder.mkdir()
    tiny_checkpoints(folder, ("denoise",))
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(folder))
    return folder


def denoise_examples() -> list[int]:
    return [i for i, row in enumerate(D.examples()) if row[1] == "denoise"]


def test_each_example_is_computed_once_and_served_from_disk(ckdir, tmp_path, monkeypatch):
    reg, results = D.Registry(), D.ExampleResults(tmp_path / "cache")
    indexes = denoise_examples()
    assert indexes and all(results.get(reg, i) is None for i in indexes)
    assert results.fill(reg, "denoise") == len(indexes)
    stored = results.get(reg, indexes[0])
    assert stored.before.is_file() and stored.after.is_file() and stored.stage1.is_file() and stored.download.is_file()
    assert "denoise" in stored.facts and NOTE in stored.facts
    # a second start (a new registry, nothing loaded) finds them: nothing is run again
    again = D.Registry()
    monkeypatch.setattr(again, "model_for", lambda task: pytest.fail("the model ran for a stored example"))
    assert results.fill(again, "denoise") == 0
    assert results.get(again, indexes[0]).after == stored.after
    derain = next(i for i, row in enumerate(D.examples()) if row[1] == "derain")
    assert results.get(again, derain) is None                       # its checkpoint is missing: nothing stored


def test_a_new_checkpoint_gets_new_results(ckdir, tmp_path):
    reg, results = D.Registry(), D.ExampleResults(tmp_path / "cache")
    first = denoise_examples()[0]
    results.fill(reg, "denoise")
    old = results.get(reg, first)
    torch.manual_seed(1)                                            # retrained: other weights, same file name
    import drcnet
    save_checkpoint(ckdir / "denoise.safetensors", drcnet.create_model("tiny"), task="denoise", preset="tiny")
    assert results.get(reg, first) is None
    assert results.fill(reg, "denoise") == len(denoise_examples())
    new = results.get(reg, first)
    assert new.after.parent != old.after.parent and new.after.read_bytes() != old.after.read_bytes()


def test_warm_up_finishes_one_task_before_the_next_starting_with_the_first(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "ck"
    folder.mkdir()
    tiny_checkpoints(folder, ("denoise", "derain", "deblur"))
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(folder))
    reg, events = D.Registry(), []

    class Model:
        def __init__(self, task):
            self.task = task

        def warm_up(self, photos=(), wait=False):
            events.append(("graph waited" if wait else "graph started", self.task))

        def warm_up_inspector(self, photos=(), wait=False):
            assert photos and wait
            events.append(("inspector graph", self.task))

    def model_for(task):
        events.append(("load", task))
        return Model(task)
    monkeypatch.setattr(reg, "model_for", model_for)
    switch = sys.getswitchinterval()
    caplog.set_level(logging.INFO, logger="drcnet.app")
    thread = reg.warm_up(["derain", "denoise", "deblur"], after_each=lambda task: events.append(
        ("examples", task, round(sys.getswitchinterval(), 9))))
    assert isinstance(thread, threading.Thread)
    thread.join(30)
    # each task: its graph starts first (a kept one loads in milliseconds), its examples, then the graph is
    # waited for before the next task; the inspector's graphs only once every task restores through its graph;
    # the GIL changes hands often while the background works, not after
    order = ("derain", "denoise", "deblur")
    assert events == [e for task in order for e in (
        ("load", task), ("graph started", task), ("examples", task, BACKGROUND_SWITCH_S), ("graph waited", task))
    ] + [e for task in order for e in (("load", task), ("inspector graph", task))]
    assert sys.getswitchinterval() == switch
    # each step logged with its time since the page (app.py shows these on stderr)
    steps = [r.getMessage().split(", ")[0] for r in caplog.records if r.getMessage().startswith("start-up: ")]
    assert steps == [f"start-up: {task}: {step} done" for task in order
                     for step in ("the examples' results", "the wait for its graph")] + \
        [f"start-up: {task}: the inspector's graph done" for task in order]


def serving_and_background(tmp_path):
    """A registry with a tiny denoise checkpoint (32 px tiles, 4 per forward) and its background_copy."""
    import drcnet
    from drcnet.model.inference import InferenceSpec

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "denoise.safetensors", drcnet.create_model("tiny"), task="denoise", preset="tiny",
                    inference=InferenceSpec("matched", tile=32, overlap=8, batch=4))
    reg = D.Registry(tmp_path)
    return reg, reg.background_copy()


def test_a_request_never_waits_for_a_background_restore_which_pauses_between_its_forwards(tmp_path):
    """The examples are computed on a background_copy: its own model and lock (a request used to wait for a whole
    background pass behind the shared lock), one tile per forward, pausing between forwards while a request runs."""
    import numpy as np

    reg, background = serving_and_background(tmp_path)
    assert background.activity is reg.activity and background.inputs is reg.inputs
    serving, copy = reg.model_for("denoise"), background.model_for("denoise")
    assert copy is not serving and copy.model is not serving.model
    assert serving.spec.batch == 4 and copy.spec.batch == 1

    forwards, first_forward, go_on = [], threading.Event(), threading.Event()

    def count(module, args, output):
        forwards.append(reg.activity.busy())
        if len(forwards) == 1:
            first_forward.set()
            go_on.wait(10)
    copy.model.register_forward_hook(count)
    photo = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)   # 9 tiles of 32 px

    def background_restore():
        with reg.activity.background(), background.lock("denoise"):
            copy.restore(photo, progress=reg.activity.yield_to_requests)
    worker = threading.Thread(target=background_restore)
    worker.start()
    assert first_forward.wait(10)                 # the background is inside its first forward, holding its lock
    request = reg.lock("denoise")
    assert request.lock.acquire(timeout=1)        # the request's own lock is free: it does not wait
    request.lock.release()
    with request:                                  # a request in flight ...
        go_on.set()
        worker.join(0.5)
        assert worker.is_alive() and len(forwards) == 1        # ... the background paused after its forward
    worker.join(10)
    assert not worker.is_alive() and len(forwards) == 9 and not any(forwards[1:])


def test_before_the_page_each_model_without_a_kept_graph_runs_once_eagerly_on_a_batch_of_its_tiles(tmp_path):
    import drcnet
    from drcnet.model.inference import InferenceSpec

    for task in ("denoise", "deblur"):
        save_checkpoint(tmp_path / f"{task}.safetensors", drcnet.create_model("tiny"), task=task, preset="tiny",
                        inference=InferenceSpec("matched", tile=32, overlap=8, batch=3))
    reg, shapes = D.Registry(tmp_path, compile="off"), []
    for task in ("denoise", "deblur"):
        reg.model_for(task).model.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    assert reg.load_kept_graphs(["denoise", "derain", "deblur"]) == []        # nothing compiled, derain missing
    assert shapes == [(3, 3, 32, 32), (3, 3, 32, 32)]                          # the first call is paid here


def test_a_request_stops_the_graph_builds_itself_and_background_work_does_not():
    """Registry.lock's request holds drcnet.serve.compiled.BUILDS from its own thread (counted across overlapping
    requests), so a build is stopped before the model runs; the start-up work's own model runs never stop it."""
    from drcnet.demo.activity import Activity
    from drcnet.serve.compiled import BUILDS

    activity, seen = Activity(), []
    assert not BUILDS.held
    with activity.request():
        assert BUILDS.held
        with activity.request():
            assert BUILDS.held
        assert BUILDS.held                     # the other request still runs
    assert not BUILDS.held

    def background():
        with activity.background(), activity.request():
            seen.append(BUILDS.held)
    worker = threading.Thread(target=background)
    worker.start()
    worker.join(10)
    assert seen == [False]


def test_a_background_forward_stops_within_a_layer_when_a_request_starts(tmp_path):
    """A background copy's model pauses before each of its innermost modules while a request runs
    (Activity.pause_inside), so a forward that a request finds half done does not run on beside it."""
    import numpy as np

    from drcnet.demo.activity import innermost_modules

    reg, background = serving_and_background(tmp_path)
    copy = background.model_for("denoise")
    assert not any(m._forward_pre_hooks for m in reg.model_for("denoise").model.modules())   # requests: none

    layers, first_layer, request_started = [], threading.Event(), threading.Event()

    def count(module, args, output):
        layers.append(reg.activity.busy())
        if len(layers) == 1:
            first_layer.set()
            request_started.wait(10)
    for module in innermost_modules(copy.model):
        module.register_forward_hook(count)

    def background_restore():
        with reg.activity.background(), background.lock("denoise"):
            copy.restore(np.random.default_rng(0).random((32, 32, 3), dtype=np.float32))   # one tile, one forward
    worker = threading.Thread(target=background_restore)
    worker.start()
    assert first_layer.wait(10)                   # the background's forward has run its first layer ...
    with reg.lock("denoise"):                     # ... when a request starts
        request_started.set()
        worker.join(0.5)
        assert worker.is_alive() and len(layers) == 1          # the forward waits before its next layer
    worker.join(10)
    assert not worker.is_alive() and len(layers) > 10 and not any(layers[1:])
