"""drcnet/demo's layering and the rough edges a visitor met, as plain functions (no app, no browser): no import loop
among the demo's modules, the input settings' order as one fact, the upload message following the task choice, the
diagnosis of any image dtype, BM3D in Compare within a size limit."""
from __future__ import annotations

import ast
import inspect
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drcnet import demo as D
from drcnet.core.paths import REPO

DEMO = REPO / "drcnet" / "demo"


# ---------------------------------------------------------------- no import loop in drcnet/demo

def demo_imports() -> dict[str, set[str]]:
    """Module -> the drcnet.demo modules it imports, at the top or inside a function (a deferred import is still a
    loop: it only hides it from the import system until the first call)."""
    graph = {}
    for path in DEMO.glob("*.py"):
        if path.name == "__init__.py":
            continue
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("drcnet.demo."):
                found.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = found
    return graph


def test_the_demo_modules_import_each_other_without_a_loop():
    graph = demo_imports()
    state: dict[str, str] = {}

    def visit(module, trail):
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            assert state.get(other) != "open", "import loop: " + " -> ".join(trail + [module, other])
            if other not in state:
                visit(other, trail + [module])
        state[module] = "done"
    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    # each fact has one home below its users
    assert {"files"} <= graph["settings"] and "inputs" not in graph["settings"]
    assert "reading" in graph["upload"] and "inputs" not in graph["upload"]


# ---------------------------------------------------------------- the input settings' order: one fact

def test_a_handler_gets_its_settings_by_name_and_shows_them_in_the_dataclass_order():
    seen = {}

    @D.takes_input_settings(synthesize=True)
    def handler(image, task, lam=0.5, settings=None, progress=None):
        """Do something.

        Args:
            lam: a mixing weight
        """
        seen.update(image=image, task=task, lam=lam, settings=settings, progress=progress)
        return "done"

    names = list(inspect.signature(handler).parameters)
    assert names == ["image", "task", "lam", *D.InputSettings.names(), "progress"]
    values = {"seed": 7, "blur_size": 15, "rain": "heavy", "sigma": 40, "reference": "ref.png", "synthesize": False}
    assert handler("a.png", "deblur", 0.9, **values) == "done"       # keywords in another order than the fields
    assert seen["settings"] == D.InputSettings(**values) and seen["lam"] == 0.9
    handler("a.png", "denoise")
    assert seen["settings"] == D.InputSettings(synthesize=True)       # the override, the other defaults
    positional = D.InputSettings(reference="r.png", synthesize=False, sigma=5, rain="heavy", blur_size=13, seed=3)
    handler("a.png", "denoise", 0.1, *positional.as_row())
    assert seen["settings"] == positional and D.InputSettings.from_row(positional.as_row()) == positional
    doc = handler.__doc__
    assert "lam: a mixing weight" in doc and all(f"{name}: " in doc for name in D.InputSettings.names())


def test_a_generator_handler_stays_a_generator():
    @D.takes_input_settings()
    def streamed(image, settings=None):
        yield settings.sigma
        yield settings.seed
    assert inspect.isgeneratorfunction(streamed)
    assert list(streamed("a.png", sigma=30, seed=4)) == [30, 4]


def test_an_examples_row_is_in_the_settings_order():
    row = D.examples()[0]
    entry = D.InputSettings.from_example({"task": "denoise", "input": "x.png", "seed": 5, "settings": {"sigma": 50}})
    assert entry == D.InputSettings(sigma=50, seed=5)
    assert D.InputSettings.from_row(row[2:]).as_row() == row[2:]


# ---------------------------------------------------------------- the upload message follows the task choice

def test_the_upload_message_follows_the_task_the_visitor_picks():
    clean = {"task": None, "finding": "looks clean (...)", "scores": {}}
    asked = D.diagnosis_message(clean, None)
    assert "No task is selected" in asked and "looks clean" in asked
    picked = D.diagnosis_message(clean, "deblur")
    assert "No task is selected" not in picked and "deblur" in picked and "looks clean" in picked
    noisy = {"task": "denoise", "finding": "noise, sigma about 22: denoise", "scores": {}}
    assert "task selected" in D.diagnosis_message(noisy, "denoise")
    other = D.diagnosis_message(noisy, "derain")
    assert "you chose derain" in other and "task selected" not in other
    report = D.check_input(str(D.ASSETS / "coffee_clean.png"))        # the upload's own message is the same text
    assert report.message == D.diagnosis_message(report.diagnosis, None)


# ---------------------------------------------------------------- diagnose: every dtype the engine takes

@pytest.mark.parametrize("name, task", [("rocket_clean", None), ("rocket_derain", "derain"),
                                        ("clock_motion", "deblur")])
def test_diagnose_gives_one_verdict_for_a_photo_as_uint8_uint16_and_float(name, task):
    from drcnet.serve.diagnose import diagnose

    u8 = np.asarray(Image.open(D.ASSETS / f"{name}.png").convert("RGB"))
    as_float = diagnose(u8.astype(np.float32) / 255)
    assert as_float.task == task
    for image in (u8, u8.astype(np.uint16) * 257, u8[..., :1], np.dstack([u8, np.full(u8.shape[:2], 255, np.uint8)])):
        verdict = diagnose(image)
        assert verdict.task == as_float.task, (image.dtype, image.shape, verdict.finding)
        assert verdict.scores["sigma"] == pytest.approx(as_float.scores["sigma"], abs=0.05)


# ---------------------------------------------------------------- BM3D in Compare, within a size limit

def test_bm3d_is_a_dependency_of_the_app():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(req.startswith("bm3d") for req in project["optional-dependencies"]["app"])
    assert any(line.startswith("bm3d") for line in (REPO / "requirements.txt").read_text().splitlines())


def test_compare_runs_bm3d_within_its_size_limit_and_says_why_above_it(reg, tmp_path, monkeypatch):
    from drcnet.eval import baselines

    shapes = []

    def stand_in(degraded, info):               # BM3D's own time is not what this test measures
        shapes.append(degraded.shape)
        return degraded
    monkeypatch.setitem(baselines.BASELINES["denoise"], "bm3d", stand_in)
    monkeypatch.setitem(baselines.MAX_PIXELS, "bm3d", 48 * 48)
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(tmp_path))            # no checkpoint: the baselines only
    rng = np.random.default_rng(0)
    for side in (48, 64):
        path = tmp_path / f"noisy{side}.png"
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
        result = D.compare(reg, str(path), "denoise")
        names = [row[0] for row in result.table]
        if side == 48:
            assert "bm3d" in names and shapes == [(48, 48, 3)]
            assert next(row for row in result.table if row[0] == "bm3d")[3] is not None    # its seconds
        else:
            assert "bm3d" not in names and shapes == [(48, 48, 3)]
            note = next(n for n in result.notes if n.startswith("bm3d skipped"))
            assert "64x64 = 4,096 pixels" in note and "2,304" in note


# ---------------------------------------------------------------- the checkpoint's inference spec decides the tiles

def test_every_tab_runs_a_checkpoint_whose_spec_tiles_it(tmp_path, monkeypatch):
    """Shipped checkpoints carry an inference spec with "matched" statistics (tiles of about the training patch);
    the engine then refuses a caller's tile size, so no tab may pass one (the app's old Limits.tile)."""
    import drcnet
    from drcnet.model.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "denoise.safetensors", drcnet.create_model("tiny"), task="denoise", preset="tiny",
                    training={"patch": 32})
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(tmp_path))
    reg = D.Registry()
    assert reg.model_for("denoise").statistics == "matched"
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (72, 80, 3), dtype=np.uint8)).save(photo)
    restored = D.restore(reg, str(photo), "denoise", stage1=True)
    assert restored.after.size == (80, 72) and restored.stats["tiles"] > 1
    compared = D.compare(reg, str(photo), "denoise", D.InputSettings(synthesize=True))
    assert "DRCNet" in [row[0] for row in compared.table] and not any("failed" in n for n in compared.notes)
    assert D.intra_cr(reg, str(photo), "denoise").table
