"""The grid-artifact measure (drcnet.evaluate) and the shipping gate (scripts/ship_checkpoint.py), run on every
shipped checkpoint with the repository's own clean photos (assets/*_clean.png)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from drcnet.checkpoint import load_checkpoint
from drcnet.degrade import degrade, eval_settings
from drcnet.evaluate import GRID_BOUND, grid_artifact_ratio, grid_phase_ratio
from drcnet.imageio import load_image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


def photo(name="chelsea", side=160) -> np.ndarray:
    rgb = load_image(REPO / "assets" / f"{name}_clean.png").rgb
    return np.ascontiguousarray(rgb[:side, :side], np.float32)


def test_a_dot_grid_stands_out_and_a_clean_photo_does_not():
    clean = photo()
    dotted = clean.copy()
    dotted[3::8, 5::8] += np.array([0.25, -0.1, 0.25], np.float32)        # magenta dots on one 8 px phase
    assert grid_phase_ratio(clean, 8) < 1.3
    assert grid_artifact_ratio(clean, clean) == pytest.approx(1.0)
    assert grid_artifact_ratio(dotted, clean) > 3 * GRID_BOUND
    noisy = clean + np.random.default_rng(0).normal(0, 0.1, clean.shape).astype(np.float32)
    assert grid_artifact_ratio(noisy, clean) < GRID_BOUND                  # noise is not a grid


def test_ship_checkpoint_refuses_a_gridded_checkpoint():
    import ship_checkpoint

    with pytest.raises(ship_checkpoint.GridArtifactError, match="grid-artifact ratio of 4.20"):
        ship_checkpoint.check_grid({"grid_max": {"drcnet": 4.2, "input": 1.0}}, "runs/x/best.safetensors")
    assert ship_checkpoint.check_grid({"grid_max": {"drcnet": 1.1}}, "x") == 1.1


@pytest.mark.parametrize("task", ["denoise", "derain", "deblur"])
def test_every_shipped_checkpoint_passes_the_gate(task):
    model, _ = load_checkpoint(REPO / "checkpoints" / f"{task}.safetensors")
    settings = eval_settings(task)
    worst = 0.0
    for i, name in enumerate(("chelsea", "coffee", "astronaut")):
        clean = photo(name)
        degraded, _ = degrade(clean, task, np.random.default_rng(i), **settings[i % len(settings)])
        with torch.no_grad():
            out = model(torch.from_numpy(degraded.transpose(2, 0, 1).copy())[None])[1]
        out = out[0].clamp(0, 1).numpy().transpose(1, 2, 0)
        worst = max(worst, grid_artifact_ratio(out, clean))
    assert worst <= GRID_BOUND, f"{task}: grid-artifact ratio {worst:.2f} > {GRID_BOUND}"
