"""drcnet.train options: --recipe, --blur-kernels, the CUDA device index, --batches device (all on the CPU)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from drcnet.train.batches import build_train_data
from drcnet.train.config import TrainConfig, parse_config
from drcnet.train.dist import Dist
from drcnet.train.run import train


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:96] / 80.0
    for n in range(3):
        img = np.stack([0.5 + 0.4 * np.sin(xx * (3 + n) + c) * np.cos(yy * 4) for c in range(3)], -1)
        img += 0.1 * rng.random(img.shape)                         # texture for a blur to remove
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(folder / f"p{n}.png")
    return folder


# --------------------------------------------------------------------------------------------------- recipes

def test_recipe_gives_the_defaults_and_command_line_flags_win():
    cfg = parse_config(["--recipe", "deblur"])
    assert (cfg.task, cfg.preset, cfg.loss, cfg.lr, cfg.batch, cfg.patch, cfg.blur_kernels) == \
        ("deblur", "lite", "l1", 1e-4, 8, 128, "7-17:0.7,19-31:0.3")
    assert cfg.recipe == "deblur" and cfg.out.endswith("deblur-lite")
    cfg = parse_config(["--recipe", "deblur", "--lr", "3e-4", "--blur-kernels", "13-31", "--preset", "tiny"])
    assert (cfg.lr, cfg.blur_kernels, cfg.preset, cfg.loss) == (3e-4, "13-31", "tiny", "l1")
    assert parse_config(["--recipe", "denoise", "--task", "derain"]).task == "derain"
    assert parse_config([]).lr == 2e-4                                       # no recipe: the paper's defaults


@pytest.mark.parametrize("task", ["denoise", "derain", "deblur"])
def test_a_recipe_as_flags_is_the_recipe(task):
    """Recipe.train_args() (how the relay and the burst pass a recipe on) parses to the --recipe config."""
    from dataclasses import asdict

    from drcnet.train.recipe import load_recipe

    by_flags = asdict(parse_config(load_recipe(task).train_args()))
    by_recipe = asdict(parse_config(["--recipe", task]))
    assert by_recipe.pop("recipe") == task and by_flags.pop("recipe") is None
    assert by_flags == by_recipe


def test_a_recipe_with_an_unknown_key_is_refused(tmp_path, monkeypatch):
    import drcnet.train.recipe

    (tmp_path / "denoise.toml").write_text('task = "denoise"\n[train]\nlr = 1e-4\nlearning_rate = 1e-4\n')
    monkeypatch.setattr(drcnet.train.recipe, "RECIPES", tmp_path)
    with pytest.raises(ValueError, match=r"unknown \[train\] keys \['learning_rate'\]"):
        parse_config(["--recipe", "denoise"])
    with pytest.raises(ValueError, match="no recipe"):
        parse_config(["--recipe", "nothing"])


# ------------------------------------------------------------------------------------------- blur kernels

def sharpness(pairs) -> float:
    """Mean |horizontal gradient| of the degraded patches over that of the clean ones (1: unblurred)."""
    grad = lambda x: float((x[..., 1:] - x[..., :-1]).abs().mean())       # noqa: E731
    return np.mean([grad(d) / grad(c) for d, c in pairs])


def test_blur_kernels_reach_the_loader_pairs(photos):
    def pairs(spec):
        cfg = TrainConfig(task="deblur", data=str(photos), patch=32, blur_kernels=spec)
        ds, desc = build_train_data(cfg)
        assert f"kernel sizes {spec}" in desc
        return [ds[i] for i in range(6)]
    assert sharpness(pairs("3")) > 1.25 * sharpness(pairs("31"))   # ignored: both ~equal
    with pytest.raises(ValueError, match="kernel"):
        TrainConfig(task="deblur", blur_kernels="8-12")


def test_blur_kernels_reach_the_device_batches(photos):
    def pairs(spec):
        cfg = TrainConfig(task="deblur", data=str(photos), patch=32, batch=4, blur_kernels=spec)
        stream, _ = build_train_data(cfg, device=torch.device("cpu"))
        d, c = next(stream(0, 1))
        return list(zip(d, c))
    assert sharpness(pairs("3")) > 1.25 * sharpness(pairs("31"))   # ignored: both ~equal


# ------------------------------------------------------------------------------------------------ devices

def test_a_single_gpu_run_sets_the_device_by_index(monkeypatch):
    """torch 2.14 refuses torch.cuda.set_device(torch.device('cuda')): the trainer passes an index."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert Dist(TrainConfig(device="auto")).device == torch.device("cuda:0")
    Dist(TrainConfig(device="cuda"))
    Dist(TrainConfig(device="cuda:1"))
    assert calls == [0, 0, 1] and all(type(c) is int for c in calls)


def test_device_batches_with_loader_workers_train_end_to_end(photos, tmp_path):
    result = train(TrainConfig(task="denoise", preset="tiny", data=str(photos), val_data=str(photos), iters=2,
                               batch=2, patch=32, loss="l1", out=str(tmp_path / "run"), log_every=1, val_every=0,
                               val_count=1, val_size=32, precision="fp32", threads=1, workers=2,
                               batches="device", device="cpu", progress=False, compile="off"))
    assert result["iterations"] == 2 and "made on cpu" in result["data"]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log if "loss" in r] == [1, 2]
