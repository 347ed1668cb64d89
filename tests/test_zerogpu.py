"""ZeroGPU by the book, checked with a stand-in `spaces` module (no GPU and no Hugging Face needed): `python app.py`
with SPACES_ZERO_GPU set imports `spaces` before torch, decorates every handler that runs a model with a duration
that fits its work (Restore's a function of the image size), loads the models at start-up and compiles nothing,
even with DRCNET_COMPILE=on.

The app runs in a fresh interpreter (the import order can only be seen there) with launch replaced; the stand-in
records what app.py asks of it, and the driver prints the record as JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drcnet import demo as D

from conftest import tiny_checkpoints

ROOT = Path(__file__).resolve().parent.parent
# compare_on_page does Compare's work (the /compare endpoint is it without the page's session State)
MODEL_HANDLERS = {"restore", "inspect", "inspect_on_page", "coverage_t", "inspect_figure", "t_sweep", "intra_cr", "compare_on_page"}

STAND_IN = '''
"""A stand-in for Hugging Face's `spaces` package: records the import order, each spaces.GPU request and every
torch.compile call from the first request on (torch is loaded by then)."""
import sys

REPORT = {"torch_loaded_before_spaces": "torch" in sys.modules, "durations": {}, "compiled": []}
DURATIONS = {}


def _record_compiles():
    import torch
    if getattr(torch.compile, "stand_in", False):
        return
    real = torch.compile

    def compile(*args, **kwargs):
        REPORT["compiled"].append(type(args[0]).__name__ if args else "?")
        return real(*args, **kwargs)
    compile.stand_in = True
    torch.compile = compile


def GPU(fn=None, duration=60):
    def decorate(f):
        _record_compiles()
        DURATIONS[f.__name__] = duration
        return f
    return decorate(fn) if fn is not None else decorate
'''

DRIVER = '''
import json, runpy, sys, threading
import gradio as gr                 # does not import torch; gradio itself imports `spaces` when it is there
gr.Blocks.launch = lambda self, *args, **kwargs: None
gr.Blocks.block_thread = lambda self: None
app = runpy.run_path("app.py", run_name="__main__")
for thread in threading.enumerate():
    if thread.name == "drcnet-warm-up":
        thread.join(240)
import spaces
report = spaces.REPORT
small, large = sys.argv[1], sys.argv[2]
for name, duration in spaces.DURATIONS.items():
    report["durations"][name] = ([duration(small, "denoise"), duration(large, "denoise")] if callable(duration)
                                 else duration)
report["loaded"] = sorted(p.name for p in app["REGISTRY"].loaded())
report["compile"] = [app["REGISTRY"].compile, app["EXAMPLE_REGISTRY"].compile]
report["example_devices"] = sorted({str(r.device) for r in app["EXAMPLE_REGISTRY"]._models.values()})
report["zero_gpu"] = app["ZERO_GPU"]
print("REPORT " + json.dumps(report))
'''


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """What app.py did on a (stand-in) ZeroGPU Space: one run for all the checks below."""
    work = tmp_path_factory.mktemp("zerogpu")
    (work / "spaces.py").write_text(STAND_IN)
    ckdir = work / "ck"
    ckdir.mkdir()
    tiny_checkpoints(ckdir, ("denoise", "deblur"))
    large = work / "large.png"
    Image.fromarray(np.zeros((3000, 4000), np.uint8)).save(large)      # 12 megapixels (only its header is read)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SPACES_ZERO_GPU": "true", "DRCNET_DEVICE": "cpu",             # the stand-in attaches no GPU
           "DRCNET_COMPILE": "on", "DRCNET_CHECKPOINTS": str(ckdir), "DRCNET_EXAMPLE_CACHE": str(work / "examples"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    small = str(D.ASSETS / "hubble_noise.png")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(DRIVER), small, str(large)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    line = next((x for x in done.stdout.splitlines() if x.startswith("REPORT ")), None)
    assert line, done.stdout[-3000:] + done.stderr[-3000:]
    return {**json.loads(line[len("REPORT "):]), "examples": work / "examples"}


@pytest.mark.timeout(660)
def test_spaces_is_imported_before_torch(report):
    assert report["zero_gpu"] is True
    assert report["torch_loaded_before_spaces"] is False


@pytest.mark.timeout(660)
def test_every_model_handler_asks_for_a_duration_that_fits_its_work(report):
    durations = report["durations"]
    assert set(durations) == MODEL_HANDLERS                # and nothing else asks for a GPU (/diagnose, uploads)
    small, large = durations["restore"]                    # a function of the image size
    assert 0 < small < large <= D.zerogpu.MAX_SECONDS
    for name in MODEL_HANDLERS - {"restore"}:              # at most 512 px: a fixed request under the 60 s default
        assert isinstance(durations[name], int) and 0 < durations[name] < 60, name


@pytest.mark.timeout(660)
def test_the_models_load_at_start_up_and_nothing_compiles(report):
    assert report["loaded"] == ["deblur.safetensors", "denoise.safetensors"]       # at module scope, every task
    assert report["compile"] == ["off", "off"] and report["compiled"] == []      # despite DRCNET_COMPILE=on
    # the examples' results: computed at start-up by a CPU copy of the models (the GPU is not touched)
    assert report["example_devices"] == ["cpu"]
    stored = list(report["examples"].glob("*/facts.json"))
    assert len(stored) == sum(row[1] in ("denoise", "deblur") for row in D.examples())


def test_on_zero_gpu_the_models_go_to_cuda_uncompiled(monkeypatch):
    monkeypatch.delenv("DRCNET_DEVICE", raising=False)
    assert D.serving_options(True) == {"device": "cuda", "compile": "off"}
    assert D.serving_options(False) == {}
    monkeypatch.setenv(D.zerogpu.ENV, "true")
    assert D.on_zero_gpu(object()) and not D.on_zero_gpu(None)
    monkeypatch.setenv(D.zerogpu.ENV, "false")
    assert not D.on_zero_gpu(object())


def test_without_spaces_the_handlers_are_left_as_they_are():
    def handler(image):
        return image
    assert D.gpu_decorator(None)(D.restore_seconds)(handler) is handler
    assert D.restore_seconds("no such file.png") == D.zerogpu.START
