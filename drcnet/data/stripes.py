"""Clean stripes: a training photo crop printed with a regular grating, like striped fabric, blinds or railings.

Why: the derain model takes fine regular stripes for rain. The safety gate's barbara.png (a clean photo whose
clothes and tablecloth are striped, periods of about 3-8 px at many angles) came back at 24-28 dB from every derain
leg that raised the test set, against the gate's 30 dB bound. Clean photos (--clean-share) and clean textures
(--clean-textures: brick, grass, gravel) moved it part of the way; neither has stripes. These samples, left
undegraded like every clean sample, show the model regular stripes that must come back unchanged
(--clean-stripes, a deviation from the paper, which trains on degraded pairs only).

How they differ from the synthetic rain (drcnet/data/degrade.py): rain is sparse bright streaks 10-40 px long at
random places, within 30 degrees of vertical, screen-blended; a grating is strictly periodic, runs across the whole
crop, at any angle, and darkens as much as it brightens.
"""
from __future__ import annotations

import numpy as np

PERIOD = (2.5, 12.0)       # px, drawn log-uniformly: barbara's stripes are 3-8 px at 512 px
# The stripes scale the photo by 1 - c .. 1 + c. Up to 0.4 until 2026-12-07: barbara's scarf, black on white,
# still lost its stripes at 256 px (28.7 dB) where they run near vertical, as rain does; so up to 0.9 now.
CONTRAST = (0.1, 0.9)
SHARPNESS = (1.0, 6.0)     # 1: a sine; larger: closer to a square wave (woven or printed stripes)
# Cloth folds: the stripes are shifted across themselves by up to BEND px, a sine of wavelength FOLD px along
# them, so they curve as on a scarf (straight gratings only until 2026-12-07). Half of the gratings stay straight.
BEND = 6.0
FOLD = (48.0, 192.0)


def grating(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A (h, w) grating in [0, 1]: a period, an angle (any), a phase, a sharpness and a bend drawn from rng."""
    h, w = shape
    period = float(np.exp(rng.uniform(*np.log(PERIOD))))
    angle = rng.uniform(0.0, np.pi)
    phase = rng.uniform(0.0, 2 * np.pi)
    sharpness = rng.uniform(*SHARPNESS)
    bend = rng.uniform(0.0, BEND) if rng.random() < 0.5 else 0.0
    fold, fold_phase = rng.uniform(*FOLD), rng.uniform(0.0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    across, along = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    across = across + bend * np.sin(2 * np.pi * along / fold + fold_phase)
    wave = np.sin(2 * np.pi * across / period + phase)
    return (0.5 + 0.5 * np.tanh(sharpness * wave) / np.tanh(sharpness)).astype(np.float32)


def add_stripes(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The (h, w, 3) float photo in [0, 1] printed with a grating: scaled by 1 + c * tint * (2 * grating - 1),
    with a contrast c and a tint per channel drawn from rng (coloured stripes on the photo's own shading)."""
    contrast = rng.uniform(*CONTRAST)
    tint = rng.uniform(0.5, 1.0, size=3).astype(np.float32)
    g = 2 * grating(photo.shape[:2], rng)[..., None] - 1
    return np.clip(photo * (1 + contrast * tint * g), 0.0, 1.0).astype(np.float32)
