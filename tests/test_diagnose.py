"""drcnet.serve.diagnose: which task fits a photo, measured on the test split's photos and the real examples."""
from pathlib import Path

import numpy as np
import pytest

from drcnet.data.degrade import blur, degrade, quantise
from drcnet.serve.diagnose import (BLUR_LENGTHS, CLEAN, box_kernel, confusion_matrix, diagnose, linear_kernel,
                             matrix_markdown, measure, skimage_test_photos)
from drcnet.serve.imageio import load_image

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def matrix():
    """The confusion matrix on scikit-image's photos of the test split (they ship with scikit-image, so this
    runs without data/; docs/diagnose.md has the full test split)."""
    photos = skimage_test_photos()
    assert len(photos) == 5, photos
    return confusion_matrix(photos)


def test_accuracy_on_the_test_photos_is_at_least_90_percent(matrix):
    n = len(matrix["items"])
    # every evaluation setting of every task, box and linear blurs of 3 lengths, each photo itself, its sky and
    # night versions
    assert n == 5 * (3 + 2 + 4 + 2 * len(BLUR_LENGTHS) + 3)
    assert matrix["accuracy"] >= 0.9, matrix_markdown(matrix)
    rows = matrix["rows"]
    assert rows["clean: photo"][CLEAN] == 5, rows    # clean photos are not sent to a task
    assert rows["clean: sky"][CLEAN] >= 4 and rows["clean: night"][CLEAN] >= 3, rows
    for task in ("denoise", "deblur", "derain"):     # each task is found, not only the majority ones
        row = matrix["matrix"][task]
        assert row[task] >= 0.8 * sum(row.values()), (task, row)
    for kind in ("deblur: box", "deblur: linear"):   # blurs along one direction (docs/diagnose.md: 0.3 before)
        assert rows[kind]["deblur"] >= 0.9 * sum(rows[kind].values()), (kind, rows[kind])


def test_matrix_markdown_counts_every_item(matrix):
    text = matrix_markdown(matrix)
    assert "| denoise |" in text and f"/{len(matrix['items'])} =" in text


@pytest.mark.parametrize("name, task", [("hubble_noise.png", "denoise"), ("clock_motion.png", "deblur"),
                                        ("astronaut_denoise.png", "denoise"), ("chelsea_deblur.png", "deblur"),
                                        ("rocket_derain.png", "derain"), ("astronaut_derain.png", "derain"),
                                        ("coffee_clean.png", None), ("astronaut_clean.png", None)])
def test_the_examples_are_recognised(name, task):
    """The real photos (Hubble's low-light sensor noise, the clock's camera shake) and the premade examples."""
    d = diagnose(load_image(ASSETS / name).rgb)
    assert d.task == task, (name, d.finding, d.scores)
    assert (task or "looks clean") in d.finding


@pytest.mark.parametrize("name", ["astronaut_clean.png", "chelsea_clean.png", "coffee_clean.png",
                                  "rocket_clean.png"])
def test_box_and_linear_blurs_of_a_sharp_photo_are_blur(name):
    """A 15 px horizontal box blur (detail over noise 2.4x: "looks clean" before the directional cue) and a
    15 px linear blur at 45 degrees, 8 bits, no noise: blurred; the photo itself stays clean."""
    sharp = load_image(ASSETS / name).rgb
    assert diagnose(sharp).task is None
    for kernel, direction in ((box_kernel(15), "horizontal"), (linear_kernel(15, 45), "45 degrees")):
        d = diagnose(quantise(blur(sharp, kernel)))
        assert d.task == "deblur", (name, direction, d.finding, d.scores)
        assert "blurred" in d.finding


def test_the_directional_cue_reads_length_and_angle():
    """A blur that only the directional cue sees (detail over noise above the bar): its length and angle
    come out in the finding, at any angle."""
    sharp = load_image(ASSETS / "chelsea_clean.png").rgb
    for angle in (0, 30, 45, 60, 120, 150):
        d = diagnose(quantise(blur(sharp, linear_kernel(15, angle))))
        s = d.scores
        assert d.task == "deblur" and s["directional_blur"] >= 12, (angle, d.finding, s)
        assert abs(s["blur_length"] - 15) <= 2.5, (angle, s)
        assert min(abs(s["blur_angle"] - angle) % 180, 180 - abs(s["blur_angle"] - angle) % 180) <= 12, (angle, s)
    assert diagnose(sharp).scores["directional_blur"] < 7
    assert "15 px, horizontal" in diagnose(quantise(blur(sharp, box_kernel(15)))).finding


def test_finding_names_the_noise_level():
    clean = load_image(ASSETS / "astronaut_clean.png").rgb
    noisy = quantise(degrade(clean, "denoise", np.random.default_rng(0), sigma=30)[0])
    d = diagnose(noisy)
    assert d.task == "denoise" and 25 <= d.scores["sigma"] <= 35
    assert f"sigma about {d.scores['sigma']:.0f}" in d.finding


def test_rain_at_an_angle_far_from_vertical_is_not_rain():
    """Streaks must run within 40 degrees of vertical: the same streaks turned 90 degrees are not rain."""
    clean = load_image(ASSETS / "astronaut_clean.png").rgb
    rainy = quantise(degrade(clean, "derain", np.random.default_rng(22), setting="heavy")[0])
    assert diagnose(rainy).task == "derain"
    s = measure(np.ascontiguousarray(np.rot90(rainy)))
    assert s["rain_asymmetry"] < measure(rainy)["rain_asymmetry"] and diagnose(np.rot90(rainy)).task is None


def test_large_photos_are_measured_on_a_centre_crop():
    rng = np.random.default_rng(0)
    small = rng.random((512, 512, 3)).astype(np.float32)
    big = np.zeros((900, 1000, 3), np.float32)
    big[194:706, 244:756] = small
    assert measure(big) == measure(small)
