"""--clean-share (issue 38, the derain safety gate): a share of the training samples is left undegraded, the same
samples on the loader and the device paths, fixed by the seed; the flag, the recipe key, the records, the resume."""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from drcnet.data.datasets import PairedFolder, SyntheticPairs, keeps_clean
from drcnet.model.checkpoint import load_checkpoint
from drcnet.train.batches import build_train_data
from drcnet.train.config import TrainConfig, parse_config
from drcnet.train.run import train
from drcnet.train.state import check_resume

SAMPLES = 96
PATCH = 64          # big enough that every derain patch catches streaks (a 16 px one may catch none)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for n in range(3):
        Image.fromarray(rng.integers(0, 256, (96, 112, 3), dtype=np.uint8)).save(folder / f"p{n}.png")
    return folder


def clean_flags(pairs) -> list[bool]:
    """Per sample: is its input exactly its target?"""
    return [torch.equal(degraded, clean) for degraded, clean in pairs]


def loader_pairs(photos, task="derain", share=0.5, seed=0, count=SAMPLES):
    ds, _ = build_train_data(TrainConfig(task=task, data=str(photos), patch=PATCH, clean_share=share, seed=seed))
    return [ds[i] for i in range(count)]


def device_pairs(photos, task="derain", share=0.5, seed=0, batch=8, iterations=SAMPLES // 8):
    cfg = TrainConfig(task=task, data=str(photos), patch=PATCH, batch=batch, clean_share=share, seed=seed)
    stream, _ = build_train_data(cfg, device=torch.device("cpu"))
    return [pair for degraded, clean in stream(0, iterations) for pair in zip(degraded, clean)]


# ------------------------------------------------------------------------------------------------ the samples

@pytest.mark.parametrize("task", ["denoise", "derain", "deblur"])
def test_about_half_the_loader_samples_stay_clean_and_the_rest_are_degraded(photos, task):
    flags = clean_flags(loader_pairs(photos, task, share=0.5))
    assert 0.3 * SAMPLES < sum(flags) < 0.7 * SAMPLES
    assert not any(clean_flags(loader_pairs(photos, task, share=0.0)))


def test_the_choice_is_fixed_by_the_seed_and_per_sample(photos):
    first = loader_pairs(photos, seed=3)
    again = loader_pairs(photos, seed=3)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert clean_flags(first) != clean_flags(loader_pairs(photos, seed=4))
    flags = np.array(clean_flags(first)).reshape(-1, 8)                     # batches of 8 mix both kinds
    assert (flags.any(1) & ~flags.all(1)).any()


def test_a_clean_share_changes_no_other_draw(photos):
    """The choice has a stream of its own: the degraded samples, and every target, are those of share 0."""
    plain, mixed = loader_pairs(photos, share=0.0, count=24), loader_pairs(photos, share=0.5, count=24)
    for (d0, c0), (d, c), kept in zip(plain, mixed, clean_flags(mixed)):
        assert torch.equal(c, c0) and torch.equal(d, c if kept else d0)


@pytest.mark.parametrize("task", ["denoise", "derain", "deblur"])
def test_the_device_batches_leave_the_same_samples_clean(photos, task):
    pairs = device_pairs(photos, task)
    flags = clean_flags(pairs)
    assert 0.3 * SAMPLES < sum(flags) < 0.7 * SAMPLES
    assert flags == [keeps_clean(0, i, 0.5) for i in range(SAMPLES)] == clean_flags(loader_pairs(photos, task))
    assert not any(clean_flags(device_pairs(photos, task, share=0.0)))


def test_a_paired_folder_keeps_its_target_as_the_input(tmp_path):
    rng = np.random.default_rng(1)
    for sub in ("input", "target"):
        (tmp_path / sub).mkdir()
        for n in range(2):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / sub / f"{n}.png")
    pairs = [PairedFolder(tmp_path, patch=16, length=SAMPLES, clean_share=0.5)[i] for i in range(SAMPLES)]
    assert clean_flags(pairs) == [keeps_clean(0, i, 0.5) for i in range(SAMPLES)]
    assert not any(clean_flags(PairedFolder(tmp_path, patch=16, length=8)[i] for i in range(8)))


def test_a_clean_sample_is_never_degraded(photos, monkeypatch):
    """Degrading a sample that is then left clean was wasted work (a rain or blur pass per sample): the choice
    comes first, and only the degraded samples pay for a degradation."""
    import drcnet.data.datasets as datasets
    calls = []
    real = datasets.degrade
    monkeypatch.setattr(datasets, "degrade", lambda *a, **k: calls.append(1) or real(*a, **k))
    flags = clean_flags(loader_pairs(photos, share=0.5, count=24))
    assert 0 < len(calls) == flags.count(False) < 24


def test_synthetic_pairs_default_to_every_sample_degraded():
    image = np.random.default_rng(2).random((40, 40, 3)).astype(np.float32)
    assert not any(clean_flags(SyntheticPairs([image], "denoise", patch=16, length=8)[i] for i in range(8)))


# ------------------------------------------------------------------------------------------ configuration

def test_the_flag_and_the_recipe_give_it(tmp_path, monkeypatch):
    import drcnet.train.recipe as recipe

    assert parse_config([]).clean_share == 0.0
    assert parse_config(["--task", "derain", "--clean-share", "0.1"]).clean_share == 0.1
    (tmp_path / "derain.toml").write_text('task = "derain"\n\n[train]\nloss = "l1"\nclean_share = 0.2\n')
    monkeypatch.setattr(recipe, "RECIPES", tmp_path)
    assert parse_config(["--recipe", "derain"]).clean_share == 0.2
    assert parse_config(["--recipe", "derain", "--clean-share", "0.05"]).clean_share == 0.05    # the flag wins
    args = recipe.load_recipe("derain").train_args()                   # how the relay and the burst pass it on
    assert parse_config(args).clean_share == 0.2
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="clean_share"):
            TrainConfig(clean_share=bad)


def test_a_resume_refuses_a_changed_share_and_accepts_older_states():
    """state.pt keeps asdict(config); a state saved before the field existed has no clean_share key."""
    started = asdict(TrainConfig(task="derain", clean_share=0.1))
    check_resume("state.pt", {"config": started}, TrainConfig(**started))
    with pytest.raises(ValueError, match="started with clean_share=0.1, not 0.2"):
        check_resume("state.pt", {"config": started}, TrainConfig(**{**started, "clean_share": 0.2}))
    older = {k: v for k, v in started.items() if k != "clean_share"}       # it ran with every sample degraded
    check_resume("state.pt", {"config": older}, TrainConfig(**older))
    with pytest.raises(ValueError, match="started with clean_share=0.0 .the default: the state predates"):
        check_resume("state.pt", {"config": older}, TrainConfig(**{**older, "clean_share": 0.2}))


def test_the_trainer_records_the_share(photos, tmp_path):
    """Two derain iterations of the tiny preset: the share reaches config.json, the data description and the
    checkpoint's training summary."""
    out = tmp_path / "run"
    result = train(TrainConfig(task="derain", preset="tiny", data=str(photos), val_data=str(photos), iters=2,
                               batch=2, patch=32, loss="l1", clean_share=0.25, out=str(out), log_every=1,
                               val_every=0, val_count=1, val_size=32, precision="fp32", threads=1, workers=0,
                               device="cpu", progress=False, compile="off", ema=0.0))
    assert result["iterations"] == 2 and "25% of the samples left clean" in result["data"]
    assert json.loads((out / "config.json").read_text())["clean_share"] == 0.25
    _, meta = load_checkpoint(out / "last.safetensors")
    assert meta["training"]["clean_share"] == 0.25


# ------------------------------------------------------------------------------------ --clean-textures

def texture_pairs(photos, textures, share_of_clean, seed=0, count=SAMPLES):
    cfg = TrainConfig(task="derain", data=str(photos), patch=PATCH, clean_share=0.5, seed=seed,
                      clean_textures=share_of_clean)
    ds = SyntheticPairs(photos, "derain", patch=PATCH, seed=seed, clean_share=cfg.clean_share, textures=textures,
                        texture_share=cfg.clean_textures)
    return [ds[i] for i in range(count)]


def test_a_share_of_the_clean_samples_is_cut_from_the_textures_and_nothing_else_changes(photos):
    grey = 0.25                        # a texture no random photo crop can match: one grey level everywhere
    texture = {"flat.png": np.full((80, 80, 3), grey, np.float32)}
    plain = loader_pairs(photos)
    mixed = texture_pairs(photos, texture, 0.5)
    assert clean_flags(mixed) == clean_flags(plain)                          # the same samples are clean
    from_texture = [bool(torch.all(clean == grey)) for _, clean in mixed]
    assert 0.25 * sum(clean_flags(plain)) < sum(from_texture) < 0.75 * sum(clean_flags(plain))
    for (d, c), (pd, pc), clean, textured in zip(mixed, plain, clean_flags(plain), from_texture):
        assert textured <= clean                                             # only clean samples are textures
        if not textured:                                                     # every other sample as without it
            assert torch.equal(d, pd) and torch.equal(c, pc)
    assert all(torch.equal(d, c) for (d, c), t in zip(mixed, from_texture) if t)     # and stays undegraded
    assert all(bool(torch.all(c == grey)) for (_, c), clean in zip(texture_pairs(photos, texture, 1.0),
                                                                    clean_flags(plain)) if clean)


def test_clean_textures_need_a_clean_share_textures_and_the_loader(photos, tmp_path):
    with pytest.raises(ValueError, match="clean-share"):
        TrainConfig(task="derain", clean_textures=0.5)
    with pytest.raises(ValueError, match="texture"):
        SyntheticPairs(photos, "derain", patch=PATCH, texture_share=0.5)
    cfg = TrainConfig(task="derain", data=str(photos), patch=PATCH, clean_share=0.2, clean_textures=0.5)
    with pytest.raises(ValueError, match="loader"):
        build_train_data(cfg, device=torch.device("cpu"))
    assert parse_config(["--clean-share", "0.2", "--clean-textures", "0.5"]).clean_textures == 0.5


# ------------------------------------------------------------------------------------- --clean-stripes

def stripe_pairs(photos, share_of_clean, textures=None, texture_share=0.0, count=SAMPLES):
    ds = SyntheticPairs(photos, "derain", patch=PATCH, clean_share=0.5, textures=textures,
                        texture_share=texture_share, stripe_share=share_of_clean)
    return [ds[i] for i in range(count)]


def dominant_share(x: np.ndarray) -> float:
    """The share of the energy of x (its mean removed) in its strongest spatial frequency (and its mirror)."""
    power = np.abs(np.fft.fft2(x - x.mean())) ** 2
    return 2 * power.max() / power.sum()


def test_a_share_of_the_clean_samples_is_printed_with_stripes_and_nothing_else_changes(photos):
    plain = loader_pairs(photos)
    mixed = stripe_pairs(photos, 0.5)
    assert clean_flags(mixed) == clean_flags(plain)                          # the same samples are clean
    striped = [not torch.equal(c, pc) for (_, c), (_, pc) in zip(mixed, plain)]
    highest = 0.0
    assert 0.25 * sum(clean_flags(plain)) < sum(striped) < 0.75 * sum(clean_flags(plain))
    for (d, c), (pd, pc), clean, s in zip(mixed, plain, clean_flags(plain), striped):
        assert s <= clean and torch.equal(d, c) == clean                     # only clean samples, kept clean
        if s:                    # the photo crop times a grating: their ratio is one regular stripe pattern
            ratio = (c / pc.clamp_min(0.05)).mean(0).numpy()[pc.min(0).values.numpy() > 0.1]
            assert 0.05 < ratio.min() and ratio.max() < 1.95 and ratio.std() > 0.02
            highest = max(highest, float(ratio.max()))
        else:
            assert torch.equal(d, pd) and torch.equal(c, pc)
    assert highest > 1.45                      # contrasts beyond 0.4 are drawn: black-on-white stripes as barbara's


def test_the_grating_is_one_regular_stripe_pattern():
    from drcnet.data.stripes import PERIOD, grating
    for seed in range(5):
        g = grating((64, 64), np.random.default_rng(seed))
        assert 0 <= g.min() < 0.05 and 0.95 < g.max() <= 1
        noise = np.random.default_rng(seed).random((64, 64))
        assert dominant_share(g) > 0.1 > 10 * dominant_share(noise)   # one frequency, bent or not
    assert 2 <= PERIOD[0] < PERIOD[1] <= 16


def test_clean_stripes_need_a_clean_share_room_beside_the_textures_and_the_loader(photos):
    with pytest.raises(ValueError, match="clean-share"):
        TrainConfig(task="derain", clean_stripes=0.5)
    with pytest.raises(ValueError, match="clean_stripes"):
        TrainConfig(task="derain", clean_share=0.2, clean_textures=0.6, clean_stripes=0.5)
    with pytest.raises(ValueError, match="at most 1"):
        SyntheticPairs(photos, "derain", patch=PATCH, textures=photos, texture_share=0.6, stripe_share=0.5)
    cfg = TrainConfig(task="derain", data=str(photos), patch=PATCH, clean_share=0.2, clean_stripes=0.5)
    with pytest.raises(ValueError, match="loader"):
        build_train_data(cfg, device=torch.device("cpu"))
    assert parse_config(["--clean-share", "0.2", "--clean-stripes", "0.5"]).clean_stripes == 0.5
    ds, desc = build_train_data(cfg)
    assert ds.stripe_share == 0.5 and "printed with stripes" in desc
