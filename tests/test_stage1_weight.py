"""--stage1-weight: the weight of the loss on the stage-1 output (issue 38 item 3: make stage 2 earn its keep)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from drcnet.model.checkpoint import load_checkpoint
from drcnet.ops.release import LEVERS
from drcnet.train.config import TrainConfig, parse_config
from drcnet.train.run import train
from drcnet.train.state import check_resume


def first_loss(tmp_path, weight: float) -> tuple[float, dict]:
    """The loss of one deblur iteration of the tiny preset (fp32, fixed seed) at this stage-1 weight."""
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for n in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(photos / f"p{n}.png")
    out = tmp_path / f"run{weight}"
    train(TrainConfig(task="deblur", preset="tiny", data=str(photos), val_data=str(photos), iters=1, batch=2,
                      patch=32, loss="l1", stage1_weight=weight, out=str(out), log_every=1, val_every=0,
                      val_count=1, val_size=32, precision="fp32", threads=1, workers=0, device="cpu",
                      progress=False, compile="off", ema=0.0, seed=3))
    loss = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    return loss[0], load_checkpoint(out / "last.safetensors")[1]


def test_the_stage1_loss_is_weighted_and_the_weight_recorded(tmp_path):
    l0, _ = first_loss(tmp_path, 0.0)
    l1, meta = first_loss(tmp_path, 1.0)
    half, _ = first_loss(tmp_path, 0.5)
    assert meta["training"]["stage1_weight"] == 1.0
    assert l1 > l0 > 0                                     # 1: both stages' losses summed (the paper); 0: out2 alone
    assert half == pytest.approx((l0 + l1) / 2, rel=1e-3)  # linear in the weight: w * L(out1) + L(out2)


def test_the_flag_is_checked_on_resume_and_counts_as_a_lever():
    assert parse_config(["--recipe", "deblur", "--stage1-weight", "0.25"]).stage1_weight == 0.25
    with pytest.raises(ValueError, match="stage1_weight"):
        TrainConfig(stage1_weight=-1)
    with pytest.raises(ValueError, match="started with stage1_weight=1.0, not 0.25"):
        check_resume("state.pt", {"config": {"stage1_weight": 1.0}}, TrainConfig(stage1_weight=0.25))
    check_resume("state.pt", {"config": {}}, TrainConfig())            # a state from before the setting
    assert "stage1_weight" in LEVERS                                   # a leg with it is not the recipe's
