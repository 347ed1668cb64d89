"""drcnet.train --init (warm start) and --minutes (the cosine schedule fitted to a wall-clock budget)."""
import json
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

import drcnet
from drcnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from drcnet.train import TrainConfig, train


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    yy, xx = np.mgrid[0:64, 0:80] / 64.0
    for n in range(3):
        img = np.stack([0.5 + 0.4 * np.sin(xx * (2 + n) + c) * np.cos(yy * 3) for c in range(3)], -1)
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(folder / f"p{n}.png")
    return folder


def cfg(photos, out, **kw):
    base = dict(task="denoise", preset="tiny", data=str(photos), val_data=str(photos), iters=4, batch=2, patch=32,
                loss="l1", out=str(out), log_every=2, val_every=0, save_every=100, val_count=2, val_size=32,
                precision="fp32", threads=1, workers=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_init_starts_from_the_checkpoint_weights(photos, tmp_path):
    torch.manual_seed(7)
    source = drcnet.create_model("tiny")
    save_checkpoint(tmp_path / "init.safetensors", source, task="denoise", preset="tiny")
    result = train(cfg(photos, tmp_path / "run", init=str(tmp_path / "init.safetensors"), lr=1e-12, lr_min=0))
    trained, meta = load_checkpoint(tmp_path / "run" / "last.safetensors")
    for (name, a), b in zip(source.state_dict().items(), trained.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)      # lr ~0: still the init's weights
    assert meta["training"]["init"] == "init.safetensors"
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[1]["iter"] == 0 and "val_psnr" in log[1]                   # validated before the first step
    assert result["iterations"] == 4


def test_init_refuses_a_checkpoint_of_another_architecture(photos, tmp_path):
    save_checkpoint(tmp_path / "lite.safetensors", drcnet.create_model("lite"), task="denoise", preset="lite")
    with pytest.raises(CheckpointError, match="do not fit"):
        train(cfg(photos, tmp_path / "run", init=str(tmp_path / "lite.safetensors")))


BUDGET_MIN = 0.2       # 12 s: setup, validation, 2 warm-up steps, 2 s of timed steps, 2 s for the save, ~5 s of steps


@pytest.fixture(scope="module")
def minutes_run(photos, tmp_path_factory):
    """One --minutes run shared by the tests that read it (each run spends its whole budget training)."""
    out = tmp_path_factory.mktemp("minutes") / "run"
    start = time.time()
    result = train(cfg(photos, out, minutes=BUDGET_MIN, iters=10 ** 6, save_every=2))
    return out, result, time.time() - start


def test_minutes_fits_the_schedule_to_the_budget(minutes_run):
    out, result, elapsed = minutes_run
    assert elapsed < BUDGET_MIN * 60 + 6                                  # ends inside its budget (+ slack)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    (fixed,) = [r for r in log if r.get("event") == "schedule"]
    assert result["planned_iterations"] == fixed["iters"] == result["iterations"] > fixed["iter"]
    steps = [r for r in log if "lr" in r]
    assert steps[-1]["lr"] == pytest.approx(1e-7, abs=1e-9)               # the cosine reached its floor
    assert json.loads((out / "config.json").read_text())["iters"] == fixed["iters"]


def test_minutes_run_resumes_with_the_schedule_it_measured(minutes_run, photos, tmp_path):
    out, first, _ = minutes_run
    shutil.copytree(out, tmp_path / "run")                                # the shared run stays as it ended
    again = train(cfg(photos, tmp_path / "run", minutes=BUDGET_MIN, iters=10 ** 6, save_every=2, resume=True))
    assert again["planned_iterations"] == first["planned_iterations"]
    assert again["start_iter"] == first["iterations"] == again["iterations"]


def test_minutes_must_be_positive():
    with pytest.raises(ValueError, match="minutes"):
        TrainConfig(minutes=0)
