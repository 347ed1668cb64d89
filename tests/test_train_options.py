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


# ------------------------------------------------------------------------- --mask-quantile (issue 37 item 4)

def test_a_quantile_mask_covers_the_top_of_each_images_own_map():
    from drcnet.model.dfr import ThresholdMask

    rng = np.random.default_rng(0)
    response = torch.from_numpy(np.stack([rng.uniform(0.4, 0.5, (1, 10, 12)), rng.uniform(0.7, 0.9, (1, 10, 12))]))
    mask = ThresholdMask(0.75, quantile=0.9)(response.float())
    for image, m in zip(response.numpy(), mask.numpy()):          # one image entirely below t, one above
        assert np.array_equal(m > 0, image >= np.quantile(image, 0.9, method="lower"))
        assert 0.1 <= m.mean() <= 0.1 + 1 / image.size
    assert ThresholdMask(0.75)(response.float())[0].sum() == 0   # the fixed t: empty for the first


def test_mask_quantile_reaches_the_model_the_checkpoint_and_the_mask_log(photos, tmp_path):
    from drcnet.model.checkpoint import load_checkpoint

    assert parse_config(["--mask-quantile", "0.9"]).mask_quantile == 0.9 and TrainConfig().mask_quantile is None
    with pytest.raises(ValueError, match="mask_quantile"):
        TrainConfig(mask_quantile=1.0)
    train(TrainConfig(task="denoise", preset="tiny", data=str(photos), val_data=str(photos), iters=2, batch=2,
                      patch=32, loss="l1", out=str(tmp_path / "run"), log_every=1, val_every=0, val_count=2,
                      val_size=128, precision="fp32", threads=1, workers=0, device="cpu", progress=False,
                      compile="off", mask_quantile=0.9))
    model, _ = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert model.cfg.mask_quantile == 0.9
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    (masks,) = [r for r in log if r.get("event") == "mask"]
    for block in masks["blocks"].values():    # every block's mask covers the top 10 % of its map (16x16 at level 3:
        # 26 of 256 pixels, above MIN_REGION; an 8x8 map's 7 pixels would join the rest, dfr.ThresholdMask)
        assert block["quantile"] == 0.9 and 0.1 <= block["coverage"] <= 0.125
        assert block["p50"] <= block["t"] <= block["p99"]
