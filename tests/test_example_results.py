"""The examples' results, ready before anyone clicks: computed by the start-up warm-up, one task at a time (the
page's first task first; its examples before its compiled graphs), stored on disk under their checkpoint's
digest, so a new checkpoint gets new results."""
from __future__ import annotations

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


def test_warm_up_finishes_one_task_before_the_next_starting_with_the_first(tmp_path, monkeypatch):
    folder = tmp_path / "ck"
    folder.mkdir()
    tiny_checkpoints(folder, ("denoise", "derain", "deblur"))
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(folder))
    reg, events = D.Registry(), []

    class Model:
        def __init__(self, task):
            self.task = task

        def warm_up(self, photos=(), wait=False, busy=None):
            assert busy is None or busy == reg.activity.busy        # the graph's builder yields to requests
            events.append(("graph waited" if wait else "graph started", self.task))

    def model_for(task):
        events.append(("load", task))
        return Model(task)
    monkeypatch.setattr(reg, "model_for", model_for)
    switch = sys.getswitchinterval()
    thread = reg.warm_up(["derain", "denoise", "deblur"], after_each=lambda task: events.append(
        ("examples", task, round(sys.getswitchinterval(), 9))))
    assert isinstance(thread, threading.Thread)
    thread.join(30)
    # each task: its graph starts first (a kept one then serves the examples), its examples, then the graph is
    # waited for before the next task; the GIL changes hands often while the background works, not after
    assert events == [e for task in ("derain", "denoise", "deblur") for e in (
        ("load", task), ("graph started", task), ("examples", task, BACKGROUND_SWITCH_S), ("graph waited", task))]
    assert sys.getswitchinterval() == switch
