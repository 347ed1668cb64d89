"""Bad uploads, in the fast tier: every endpoint's message for each kind, as the user reads it.

The demo's handlers (drcnet.demo) are called directly, wrapped in app.py's own `user_errors` (the layer that
turns errors into gr.Error, the text the browser and gradio_client show); app.py is run as __main__ with
`launch` replaced, so nothing listens on a port. The 25 MB limit is Gradio's upload route enforcing the
`max_file_size` app.py launches with, driven in-process through Starlette's TestClient."""
from __future__ import annotations

import functools
import inspect
import logging
import runpy
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drcnet import demo as D

from conftest import tiny_checkpoints

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ("restore", "inspect", "t_sweep", "intra_cr", "compare")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """app.py's globals after `python app.py`, with Blocks.launch recorded instead of run."""
    import gradio as gr

    launched = {}

    def record(self, *args, **kwargs):
        launched.update(blocks=self, args=args, kwargs=kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(gr.Blocks, "launch", record)
    mp.setattr(D.Registry, "warm_up", lambda self, *a, **k: None)    # no models or example results in the background
    try:
        namespace = runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
    finally:
        mp.undo()
    assert launched, "app.py did not call launch() when run as __main__"
    return {**namespace, "launched": launched}


@pytest.fixture(scope="module")
def ckdir(tmp_path_factory):
    return tiny_checkpoints(tmp_path_factory.mktemp("ck"), D.TASKS)


@pytest.fixture(autouse=True)
def env(app, ckdir, monkeypatch):
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(ckdir))
    app["REGISTRY"].clear()                     # a cached input would skip the reader these tests break
    yield
    app["REGISTRY"].clear()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file of each bad kind (named after the kind) and a good photo."""
    d = tmp_path_factory.mktemp("uploads")
    y, x = np.mgrid[0:48, 0:64] / 64.0
    good = d / "photo.png"
    Image.fromarray(np.uint8(np.stack([x, y, 0.5 + 0.3 * np.sin(8 * x)], -1) * 255)).save(good)
    (d / "text.png").write_text("this is not an image, only text with a .png name\n")
    Image.new("RGB", (1, 1)).save(d / "1x1.png")
    Image.new("L", (8000, 5001)).save(d / "bomb.png")         # 40,008,000 pixels, 40 KB on disk
    data = good.read_bytes()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    return d


# The whole message for each kind: the file's name, what is wrong, and (for the limits) the numbers.
MESSAGES = {
    "text": "text.png: not an image file, or a format this app cannot read",
    "1x1": "1x1.png: 1x1 is too small to restore (at least 8x8 pixels)",
    "bomb": "bomb.png: 8000x5001 = 40,008,000 pixels is over the limit of 40,000,000 pixels (a guard against "
            "decompression bombs; the limit is configurable)",
    "truncated": "truncated.png: the image data is damaged or truncated",
}


def user_message(app, endpoint: str, *args) -> str:
    """Call the demo handler through app.py's user_errors; return the gr.Error text (fail if none)."""
    import gradio as gr

    with pytest.raises(gr.Error) as e:
        app["user_errors"](functools.partial(getattr(D, endpoint), app["REGISTRY"]))(*args)
    return e.value.message


@pytest.mark.parametrize("kind", sorted(MESSAGES))
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_each_endpoint_names_the_problem_of_each_bad_file(app, files, endpoint, kind):
    message = user_message(app, endpoint, str(files / f"{kind}.png"), "denoise")
    assert message.startswith(MESSAGES[kind]), message
    assert "Unexpected error" not in message


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_no_image_given(app, endpoint):
    assert user_message(app, endpoint, None, "denoise") == \
        "No input image given: upload, paste or pick an example first."


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_api_handlers_are_the_guarded_demo_handlers(app, files, endpoint):
    """/restore ... /compare as registered by app.py give the same message as the demo handler (so they are
    wrapped in user_errors and call the demo)."""
    import gradio as gr

    with pytest.raises(gr.Error) as e:
        answer = app[endpoint](str(files / "text.png"), "denoise")
        if inspect.isgenerator(answer):        # Compare streams its results: the error comes with the first
            next(answer)
    assert e.value.message == MESSAGES["text"]


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e != "compare"])
def test_unexpected_error_is_reported_briefly_logged_and_the_app_carries_on(app, files, endpoint, monkeypatch,
                                                                            caplog):
    def broken(task):
        raise RuntimeError("the disk went away")

    with monkeypatch.context() as m, caplog.at_level(logging.ERROR, logger="drcnet.app"):
        m.setattr(app["REGISTRY"], "model_for", broken)
        message = user_message(app, endpoint, str(files / "photo.png"), "denoise")
    assert message == "Unexpected error (RuntimeError: the disk went away); the app is still running."
    assert "unexpected error in" in caplog.text and "the disk went away" in caplog.text    # the traceback logged
    if endpoint == "restore":          # and the next call works (every endpoint: test_app_e2e, slow tier)
        restore = functools.partial(D.restore, app["REGISTRY"])
        assert app["user_errors"](restore)(str(files / "photo.png"), "denoise").after.size == (64, 48)


def test_compare_keeps_going_when_drcnet_fails(reg, files, monkeypatch):
    """Compare's own 'unexpected error' branch: a failing method becomes a note, the others still run."""
    monkeypatch.setattr(reg, "restorer", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no disk")))
    r = D.compare(reg, str(files / "photo.png"), "denoise")
    assert "DRCNet failed: RuntimeError: no disk" in r.notes
    assert [row[0] for row in r.table][0] == "input (degraded)" and len(r.table) > 1      # the baselines ran


def test_out_of_memory_message(app, files, monkeypatch):
    def oom(task):
        raise MemoryError()

    monkeypatch.setattr(app["REGISTRY"], "model_for", oom)
    assert user_message(app, "restore", str(files / "photo.png"), "denoise") == \
        "Out of memory for this image: try a smaller one."


def test_a_reader_error_imageio_did_not_foresee_names_the_file(app, files, monkeypatch):
    def explode(*a, **k):
        raise OSError("broken PNG chunk")

    import drcnet.demo.reading
    monkeypatch.setattr(drcnet.demo.reading, "load_image", explode)
    assert user_message(app, "restore", str(files / "photo.png"), "denoise") == \
        "photo.png: cannot read this image (OSError: broken PNG chunk)"


def test_uploads_over_25_mb_are_refused_with_the_limit_in_the_message(app, tmp_path, monkeypatch):
    """README: uploads up to 25 MB per file. app.py launches with max_file_size; Gradio's upload route applies
    it: one byte over is refused (413, the limit in bytes in the message), just under is accepted."""
    from fastapi.testclient import TestClient
    from gradio import utils
    from gradio.routes import App

    kwargs = app["launched"]["kwargs"]
    assert kwargs.get("max_file_size") == "25mb"
    limit = utils._parse_file_size(kwargs["max_file_size"])
    assert limit == 25 * 1024 * 1024
    blocks = app["launched"]["blocks"]
    monkeypatch.setattr(blocks, "max_file_size", limit, raising=False)     # what launch() does with it
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    client = TestClient(App.create_app(blocks))
    over = client.post("/gradio_api/upload", files={"files": ("big.png", b"\0" * (limit + 1), "image/png")})
    assert over.status_code == 413
    assert over.text == f"File size exceeded maximum allowed size of {limit} bytes."
    under = client.post("/gradio_api/upload", files={"files": ("big.png", b"\0" * (limit - 4096), "image/png")})
    assert under.status_code == 200, under.text
    for path in under.json():
        Path(path).unlink(missing_ok=True)


# ---------------------------------------------------------------- on arrival: the same messages, on every tab

@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_an_upload_is_checked_on_arrival_with_the_handlers_message(app, files, kind):
    """app.py's upload listeners (on the input and the reference, above the tabs) say what Restore would."""
    message, suggestion, diagnosis = app["on_upload"](str(files / f"{kind}.png"))
    assert message == f"⚠️ {user_message(app, 'restore', str(files / f'{kind}.png'), 'denoise')}"
    assert message.startswith(f"⚠️ {MESSAGES[kind]}")
    assert suggestion is None and diagnosis is None        # the task stays as it was
    assert app["on_reference_upload"](str(files / f"{kind}.png")).startswith(f"⚠️ {MESSAGES[kind]}")


def test_a_clean_upload_empties_the_task_and_restore_asks_which(app):
    """app.py's wiring: a photo that looks clean sets the task radio to None; Restore (through user_errors, as
    the page calls it) answers with the question and the warning, as a warning (not an error), changing nothing."""
    import warnings

    import gradio as gr

    photo = str(D.ASSETS / "coffee_clean.png")
    message, suggestion, diagnosis = app["on_upload"](photo)
    task, _ = app["settle_task"](message, suggestion, False, diagnosis, "denoise")
    assert "looks clean" in message and task["__type__"] == "update" and task["value"] is None
    assert diagnosis["task"] is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert app["user_errors"](functools.partial(D.restore, app["REGISTRY"]))(photo, None) == gr.skip()
    answer = next(str(w.message) for w in caught if "No task selected" in str(w.message))
    assert answer.startswith("No task selected") and "looks clean" in answer and "Unexpected" not in answer


def test_a_good_upload_gets_its_diagnosis_and_task(app):
    message, suggestion, _ = app["on_upload"](str(D.ASSETS / "clock_motion.png"))
    assert "deblur" in message and suggestion == {"task": "deblur"}
    answer = app["diagnose"](str(D.ASSETS / "clock_motion.png"))           # the /diagnose endpoint
    assert answer["task"] == "deblur" and "blurred" in answer["finding"] and "sigma" in answer["scores"]
    with pytest.raises(gr_error()) as e:
        app["diagnose"](None)
    assert e.value.message == "No input image given: upload, paste or pick an example first."


def gr_error():
    import gradio as gr
    return gr.Error


def test_an_example_click_runs_only_the_tab_the_visitor_is_on(app):
    import gradio as gr

    calls = []

    def handler(image, task):
        calls.append((image, task))
        return "done", 1

    def streamed(image, task, progress=None):
        yield "first", 1
        yield "second", 2

    listener = app["only_on"]("inspect", handler, 2)
    assert listener("inspect", "a.png", "denoise") == ("done", 1) and calls == [("a.png", "denoise")]
    skipped = listener("restore", "a.png", "denoise")
    assert len(skipped) == 2 and all(s == gr.skip() for s in skipped) and len(calls) == 1
    stream = app["only_on"]("compare", streamed, 2)
    assert inspect.isgeneratorfunction(stream)
    assert list(stream("compare", "a.png", "denoise")) == [("first", 1), ("second", 2)]
    assert [len(s) for s in stream("intra_cr", "a.png", "denoise")] == [2]


def test_the_example_gallery_runs_a_listener_for_each_tab(app):
    """The gallery's click fills the controls, then one guarded listener per tab (restore, inspect, Intra-CR,
    compare) follows it: the wiring only_on's test above relies on."""
    blocks = app["demo"]
    gallery = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "examples")
    fills = [d for d in blocks.fns.values() if any(t[0] == gallery._id and t[1] == "select" for t in d.targets)]
    assert len(fills) == 1
    followers = [d for d in blocks.fns.values() if d.trigger_after == fills[0]._id]
    assert len(followers) == 4
