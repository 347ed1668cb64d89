"""--loss l1+fft: L1 + w * MIMO-UNet's frequency L1 (issue 38 item 3), its weight --fft-weight, and the trainer."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from drcnet.model.checkpoint import load_checkpoint
from drcnet.train.config import TrainConfig, parse_config
from drcnet.train.losses import FrequencyL1, L1FrequencyLoss, L1Loss, make_loss
from drcnet.train.run import train
from drcnet.train.state import check_resume


def mimo_unet_term(x, clean):
    """MIMO-UNet's own form: two FFTs, real and imaginary parts stacked on a last axis, L1 of that."""
    fx, fj = torch.fft.rfft2(x), torch.fft.rfft2(clean)
    return F.l1_loss(torch.stack([fx.real, fx.imag], -1), torch.stack([fj.real, fj.imag], -1))


def camera_pair():
    """A 64 px crop of skimage's camera (edges and texture) as (1, 3, 64, 64), and a 5x5 box blur of it."""
    clean = torch.tensor(data.camera()[200:264, 200:264] / 255.0, dtype=torch.float32)[None, None].repeat(1, 3, 1, 1)
    blurred = F.conv2d(F.pad(clean, (2, 2, 2, 2), mode="reflect"), torch.ones(3, 1, 5, 5) / 25, groups=3)
    return clean, blurred


# ------------------------------------------------------------------------------------------------ the term

def test_the_term_is_zero_for_identical_images_and_positive_otherwise():
    x = torch.rand(2, 3, 16, 20)
    assert FrequencyL1()(x, x.clone()).item() == 0.0
    assert FrequencyL1()(x + 1e-3 * torch.randn_like(x), x).item() > 0.0


def test_the_term_matches_a_hand_computed_dft():
    """1x3 signals: rfft2 keeps F0 = a + b + c and F1 = a + b w + c w^2 (w = exp(-2 pi i / 3)). An error of 1 at
    the middle pixel gives F0 = 1 and F1 = w = -1/2 - i sqrt(3)/2: the L1 of (re, im) pairs is (1 + 0 + 1/2 +
    sqrt(3)/2) / 4, where the complex magnitude would have said (1 + 1) / 2."""
    clean = torch.zeros(1, 1, 1, 3)
    x = torch.tensor([[[[0.0, 1.0, 0.0]]]])
    assert FrequencyL1()(x, clean).item() == pytest.approx((1 + 0.5 + math.sqrt(3) / 2) / 4, rel=1e-6)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])            # 2x2: F = 10, -2, -4, 0, all real
    assert FrequencyL1()(x, torch.zeros_like(x)).item() == pytest.approx(16 / 8)


def test_one_fft_of_the_difference_equals_mimo_unets_two_ffts_value_and_gradient():
    clean = torch.rand(2, 3, 12, 15)
    ours = torch.rand(2, 3, 12, 15, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_(True)
    a, b = FrequencyL1()(ours, clean), mimo_unet_term(theirs, clean)
    a.backward()
    b.backward()
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-9)
    assert ours.grad.abs().sum() > 0 and torch.isfinite(ours.grad).all()


def test_at_equal_pixel_l1_the_term_costs_a_blur_more_than_noise():
    """Pixel L1 cannot tell a blurred copy from a noisy copy at the same mean |error|; the frequency term
    charges the blur more (its error sits on the edges, concentrated in space, spread over the spectrum)."""
    clean, blurred = camera_pair()
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    noisy = clean + noise * (blurred - clean).abs().mean() / noise.abs().mean()
    l1 = L1Loss()
    assert l1(blurred, clean, blurred).item() == pytest.approx(l1(noisy, clean, noisy).item(), rel=1e-5)
    assert FrequencyL1()(blurred, clean) > 1.15 * FrequencyL1()(noisy, clean)
    combined = L1FrequencyLoss()
    assert combined(blurred, clean, blurred) > combined(noisy, clean, noisy)


def test_the_term_scales_as_documented_with_the_patch():
    """Unnormalised like MIMO-UNet: a white error costs about sqrt(H * W / 2) times its pixel L1."""
    clean = torch.rand(2, 3, 128, 128)
    x = clean + 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    ratio = FrequencyL1()(x, clean) / (x - clean).abs().mean()
    assert ratio.item() == pytest.approx(math.sqrt(128 * 128 / 2), rel=0.02)


def test_the_term_runs_in_float32_under_bf16_autocast_on_the_cpu():
    clean = torch.rand(1, 3, 24, 24)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = conv(clean)
        assert x.dtype == torch.bfloat16
        loss = make_loss("l1+fft")(x, clean, clean)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0
    expected = L1Loss()(x.float(), clean, clean) + 0.1 * mimo_unet_term(x.float(), clean)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


# ------------------------------------------------------------------------------------------------ the loss

def test_l1_fft_is_l1_plus_the_weighted_term_and_weight_zero_is_l1():
    clean, blurred = camera_pair()
    l1 = L1Loss()(blurred, clean, blurred)
    for w in (0.1, 0.5):
        loss = make_loss("l1+fft", fft_weight=w)
        assert isinstance(loss, L1FrequencyLoss) and loss.fft_weight == w
        expected = l1 + w * FrequencyL1()(blurred, clean)
        assert loss(blurred, clean, blurred).item() == pytest.approx(expected.item(), rel=1e-6)
    assert make_loss("l1+fft", fft_weight=0.0)(blurred, clean, blurred).item() == pytest.approx(l1.item())
    assert make_loss("l1+fft").fft_weight == 0.1                             # MIMO-UNet's weight by default
    assert type(make_loss("l1", fft_weight=0.5)) is L1Loss                   # other losses ignore the weight


# ------------------------------------------------------------------------------------------------ configuration

def test_the_command_line_gives_the_loss_and_its_weight():
    cfg = parse_config(["--recipe", "deblur", "--loss", "l1+fft"])
    assert (cfg.task, cfg.loss, cfg.fft_weight) == ("deblur", "l1+fft", 0.1)
    cfg = parse_config(["--recipe", "deblur", "--loss", "l1+fft", "--fft-weight", "0.05"])
    assert make_loss(cfg.loss, fft_weight=cfg.fft_weight).fft_weight == 0.05
    with pytest.raises(ValueError, match="fft_weight"):
        TrainConfig(fft_weight=-0.1)


def test_a_recipe_can_set_the_loss_and_its_weight(tmp_path, monkeypatch):
    import drcnet.train.recipe as recipe

    (tmp_path / "deblur.toml").write_text('task = "deblur"\n\n[train]\nloss = "l1+fft"\nfft_weight = 0.2\n')
    monkeypatch.setattr(recipe, "RECIPES", tmp_path)
    cfg = parse_config(["--recipe", "deblur"])
    assert (cfg.loss, cfg.fft_weight) == ("l1+fft", 0.2)
    assert parse_config(["--recipe", "deblur", "--fft-weight", "0.3"]).fft_weight == 0.3    # the flag wins
    args = recipe.load_recipe("deblur").train_args()                  # how the relay and the burst pass it on
    assert args[args.index("--fft-weight") + 1] == "0.2" and parse_config(args).fft_weight == 0.2


def test_a_resume_refuses_a_changed_weight_and_accepts_older_states():
    saved = {"config": {"loss": "l1+fft", "fft_weight": 0.1}}
    check_resume("state.pt", saved, TrainConfig(loss="l1+fft", fft_weight=0.1))
    with pytest.raises(ValueError, match="started with fft_weight=0.1, not 0.2"):
        check_resume("state.pt", saved, TrainConfig(loss="l1+fft", fft_weight=0.2))
    check_resume("state.pt", {"config": {"loss": "l1"}}, TrainConfig(loss="l1"))   # saved before the field


def test_the_trainer_trains_with_it_under_bf16_and_records_the_weight(tmp_path):
    """Two deblur iterations of the tiny preset with autocast on: the weight reaches config.json and the
    checkpoint's training summary."""
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for n in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(photos / f"p{n}.png")
    out = tmp_path / "run"
    result = train(TrainConfig(task="deblur", preset="tiny", data=str(photos), val_data=str(photos), iters=2,
                               batch=2, patch=32, loss="l1+fft", fft_weight=0.05, out=str(out), log_every=1,
                               val_every=0, val_count=1, val_size=32, precision="bf16", threads=1, workers=0,
                               device="cpu", progress=False, compile="off", ema=0.0))
    assert (result["iterations"], result["precision"]) == (2, "bf16")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in log if "loss" in r)
    assert json.loads((out / "config.json").read_text())["fft_weight"] == 0.05
    _, meta = load_checkpoint(out / "last.safetensors")
    assert (meta["training"]["loss"], meta["training"]["fft_weight"]) == ("l1+fft", 0.05)
