"""The app's feedback to a visitor, as plain handlers (no browser): upload checks and the diagnosis, premade
examples' known settings reaching the baselines, the test-set gains on the status line, and the fixed figures."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from drcnet import demo as D
from drcnet.data.degrade import degrade
from drcnet.serve.imageio import load_image

from conftest import tiny_checkpoints

ASSETS = D.ASSETS


@pytest.fixture(scope="module")
def ckdir(tmp_path_factory):
    return tiny_checkpoints(tmp_path_factory.mktemp("ck"), ("denoise",))


@pytest.fixture(autouse=True)
def env(reg, ckdir, monkeypatch):
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(ckdir))
    yield
    reg.clear()


# ---------------------------------------------------------------- upload: check and diagnose on arrival

def test_upload_of_a_noisy_photo_names_the_noise_and_selects_denoise():
    report = D.check_input(str(ASSETS / "hubble_noise.png"))
    assert report.task == "denoise" and "noise, sigma about" in report.message
    assert report.diagnosis["task"] == "denoise" and report.diagnosis["scores"]["sigma"] > 2


def test_upload_of_a_clean_photo_warns_and_selects_no_task():
    """A photo diagnosed clean empties the task selection (one click on Restore must not soften it)."""
    report = D.check_input(str(ASSETS / "coffee_clean.png"))
    assert report.select and report.task is None              # select "no task", not "leave it as it is"
    assert "looks clean" in report.message and "Degrade a clean photo first" in report.message
    assert "No task is selected" in report.message
    noisy = D.check_input(str(ASSETS / "hubble_noise.png"))
    assert noisy.select and noisy.task == "denoise"


@pytest.fixture
def nothing_runs(reg, monkeypatch):
    """Fail the test if a model is loaded or an input prepared past the task check."""
    import drcnet.demo.inputs

    def refuse(*args, **kwargs):
        raise AssertionError("a model or an input was loaded with no task selected")
    monkeypatch.setattr(reg, "model_for", refuse)
    monkeypatch.setattr(reg, "restorer", refuse)
    monkeypatch.setattr(drcnet.demo.inputs, "load", refuse)


@pytest.mark.parametrize("task", [None, ""])
def test_restore_with_no_task_asks_which_and_repeats_the_warning(reg, nothing_runs, task):
    photo = str(ASSETS / "coffee_clean.png")
    with pytest.raises(D.DemoError) as e:
        D.restore(reg, photo, task)
    message = D.user_message(e.value)
    assert message.startswith("No task selected: choose which task to run"), message
    assert "denoise, derain or deblur" in message
    assert "looks clean" in message and "Restoring a clean photo can only soften it" in message
    assert "*" not in message                                 # an error toast, not markdown
    assert not reg.loaded()


def test_every_tab_with_no_task_asks_which(reg, nothing_runs):
    """Inspect, the t sweep, the quantile control, the figure, Intra-CR and Compare answer the same way."""
    photo = str(ASSETS / "coffee_clean.png")
    calls = [lambda: D.inspect(reg, photo, None), lambda: D.t_sweep(reg, photo, None),
             lambda: D.quantile_t(reg, photo, None), lambda: D.inspect_figure(reg, photo, None),
             lambda: D.intra_cr(reg, photo, None, settings=D.InputSettings(synthesize=False)),
             lambda: list(D.compare_steps(reg, photo, None))]
    for call in calls:
        with pytest.raises(D.DemoError, match="No task selected") as e:
            call()
        assert "looks clean" in str(e.value)


def test_no_task_on_a_photo_to_degrade_or_a_degraded_one(reg):
    """Degrading a clean photo first: only the question (the warning is moot). A degraded photo: the question
    and the diagnosis's suggestion."""
    clean = str(ASSETS / "coffee_clean.png")
    assert D.no_task_message(clean, synthesize=True) == D.NO_TASK
    with pytest.raises(D.DemoError) as e:
        D.restore(reg, clean, None, settings=D.InputSettings(synthesize=True))
    assert str(e.value) == D.NO_TASK
    noisy = D.no_task_message(str(ASSETS / "hubble_noise.png"))
    assert noisy.startswith(D.NO_TASK) and "suggests denoise" in noisy
    assert D.no_task_message(None) == D.NO_TASK
    with pytest.raises(D.DemoError, match="No task selected"):
        reg.checkpoint(None)


def test_upload_of_a_bad_file_gives_the_handlers_message(reg, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(Exception) as handler_error:
        D.restore(reg, str(bad), "denoise")
    expected = D.user_message(handler_error.value)
    assert expected and "notes.png" in expected
    assert D.check_input(str(bad)).message == f"⚠️ {expected}"
    assert D.check_reference(str(bad)) == f"⚠️ {expected}"
    assert D.check_input(None).message == "" and D.check_reference(None) == ""
    with pytest.raises(D.DemoError, match="No input image given"):
        D.diagnose_file(None)


# ---------------------------------------------------------------- premade examples' known settings

def test_a_premade_denoise_example_gives_the_baselines_its_true_sigma():
    path = str(ASSETS / "astronaut_denoise.png")
    prepared = D.prepare(path, "denoise")
    info, notes = D.baseline_info(prepared, "denoise")
    assert info["sigma"] == 25 and any("known" in n and "sigma 25" in n for n in notes)
    assert not any("estimated" in n for n in notes)


def test_the_deblur_example_kernel_is_regenerated_from_its_size_and_seed():
    entry = next(e for e in json.loads((ASSETS / "examples.json").read_text()) if e["input"] == "chelsea_deblur.png")
    known = D.known_degradation(str(ASSETS / "chelsea_deblur.png"), "deblur")
    clean = load_image(ASSETS / entry["reference"]).rgb
    made, info = degrade(clean, "deblur", np.random.default_rng(entry["seed"]), **entry["settings"])
    assert np.array_equal(known["kernel"], info["kernel"])          # what scripts/make_assets.py drew
    stored = np.asarray(Image.open(ASSETS / "chelsea_deblur.png"), np.float32) / 255
    assert np.abs(made - stored).max() < 1e-6                        # and the committed picture is that blur


def test_compare_on_the_deblur_example_runs_the_nonblind_baselines(reg):
    r = D.compare(reg, str(ASSETS / "chelsea_deblur.png"), "deblur",
                  settings=D.InputSettings(reference=str(ASSETS / "chelsea_clean.png")))
    names = [row[0] for row in r.table]
    assert "wiener_nonblind" in names and "richardson_lucy_nonblind" in names
    assert not any("skipped" in n for n in r.notes)
    best = {row[0]: row[1] for row in r.table}
    assert best["wiener_nonblind"] > best["input (degraded)"]        # the true kernel: deblurring works


def test_an_upload_with_an_examples_name_but_other_pixels_gets_no_known_settings(tmp_path):
    copy = tmp_path / "astronaut_denoise.png"
    img = np.asarray(Image.open(ASSETS / "astronaut_denoise.png")).copy()
    img[0, 0] ^= 1
    Image.fromarray(img).save(copy)
    assert D.known_degradation(str(copy), "denoise") is None
    shutil.copy(ASSETS / "astronaut_denoise.png", copy)
    assert D.known_degradation(str(copy), "denoise")["sigma"] == 25
    assert D.known_degradation(str(copy), "deblur") is None          # another task: not this example's settings


def test_example_captions_say_clean_photos_are_degraded_on_click():
    entries = json.loads((ASSETS / "examples.json").read_text())
    captions = [D.example_caption(e) for e in entries]
    assert not any("live" in c for c in captions)
    synthetic = [c for c, e in zip(captions, entries) if e.get("synthesize")]
    assert synthetic and all("clean + " in c for c in synthetic)


# ---------------------------------------------------------------- measured gains on the status line

def _scores(task, gains, **extra):
    mean = {s: {"input": {"psnr": 20.0}, "drcnet": {"psnr": 20.0 + g}, **extra} for s, g in gains.items()}
    return {"task": task, "mean": mean}


def test_status_shows_each_checkpoints_test_set_gain_and_follows_a_new_file(reg, ckdir):
    scores = ckdir / "denoise.test.json"
    scores.write_text(json.dumps(_scores("denoise", {"sigma15": 0.12, "sigma25": 3.0, "sigma50": 6.0},
                                         nlm={"psnr": 30.0})))
    md = D.status_markdown(reg)
    line = next(ln for ln in md.splitlines() if "**denoise**" in ln)
    assert "+0.1 dB (sigma 15), +3.0 dB (sigma 25), +6.0 dB (sigma 50) on the test set" in line
    assert "an early checkpoint" in line                      # far short of the recipe's targets over nlm
    scores.write_text(json.dumps(_scores("denoise", {"sigma15": 12.0, "sigma25": 12.0, "sigma50": 12.0},
                                         nlm={"psnr": 20.0})))
    line = next(ln for ln in D.status_markdown(reg).splitlines() if "**denoise**" in ln)
    assert "+12.0 dB (sigma 15)" in line and "meets its targets" in line
    scores.unlink()
    assert "on the test set" not in D.status_markdown(reg)       # no card: no number made up


def test_setting_labels():
    assert D.setting_label("deblur", "kernel13_seed101") == "13 px"
    assert D.setting_label("denoise", "sigma50") == "sigma 50" and D.setting_label("derain", "heavy") == "heavy"


# ---------------------------------------------------------------- figures

def test_coverage_has_digits_enough_to_be_nonzero():
    from drcnet.demo.figures import percent
    assert percent(0) == "0%" and percent(1) == "100%"
    assert percent(0.0004) == "0.04%" and percent(3e-6) != "0.0%" and float(percent(3e-6)[:-1]) > 0
    assert percent(0.99996) == "99.996%" and percent(0.25) == "25.0%"


def test_mask_colour_stands_out_from_a_red_photo():
    from drcnet.demo.figures import MARK_COLOURS, contrast_colour
    astronaut = load_image(ASSETS / "astronaut_clean.png").rgb
    name, _ = contrast_colour(astronaut)
    assert name not in ("red", "magenta", "yellow")
    red = np.zeros((32, 32, 3), np.float32)
    red[..., 0] = 1
    assert contrast_colour(red)[0] != "red"
    cyan = np.ones((32, 32, 3), np.float32) * np.array(MARK_COLOURS["cyan"], np.float32)
    assert contrast_colour(cyan)[0] != "cyan"


def test_mask_overlay_draws_the_outline_in_the_chosen_colour():
    import matplotlib.pyplot as plt
    from drcnet.demo.figures import MARK_COLOURS, fig_to_image
    from drcnet.demo.inspect_slides import mask_overlay
    photo = np.zeros((64, 64, 3), np.float32)
    photo[..., 0], photo[..., 1] = 0.9, 0.4                             # an orange photo
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    fig, ax = plt.subplots(figsize=(3, 3), dpi=80)
    name = mask_overlay(ax, photo, mask, float(mask.mean()))
    assert name in ax.get_title() and "coverage 9.8%" in ax.get_title()
    pixels = np.asarray(fig_to_image(fig), np.float32) / 255
    colour = np.array(MARK_COLOURS[name], np.float32)
    assert (np.abs(pixels - colour).max(-1) < 0.1).sum() > 20            # the outline is drawn in it


def test_sweep_values_span_the_blocks_own_range_densely():
    from drcnet.demo.inspect_tab import sweep_values
    r = np.concatenate([np.linspace(0.47, 0.51, 990), [0.9] * 10]).reshape(25, 40)
    ts = sweep_values(r)
    assert len(ts) == 8 and 0.47 <= min(ts) and max(ts) <= 0.9
    assert sum(0.47 <= t <= 0.51 for t in ts) >= 7                     # dense where M_sr lives
    assert sweep_values(None) == tuple(float(t) for t in D.T_SWEEP)


def test_t_sweep_by_default_sweeps_the_blocks_m_sr(reg, tmp_path):
    y, x = np.mgrid[0:40, 0:48] / 48.0
    path = tmp_path / "p.png"
    Image.fromarray(np.uint8(np.stack([x, y, 0.5 + 0.3 * np.sin(8 * x)], -1) * 255)).save(path)
    plot, rows = D.t_sweep(reg, str(path), "denoise", 1, 0, settings=D.InputSettings(synthesize=True))
    ts = [row["t"] for row in rows]
    assert len(rows) >= 2 and ts == sorted(ts) and all(row["psnr"] is not None for row in rows)
    covs = [row["coverage"] for row in rows]
    assert covs[0] > 0.9 and covs[-1] < 0.1                              # from nearly all to nearly none
    assert plot.size[0] > 300


def test_intra_cr_negatives_carry_their_label_under_the_picture(reg, tmp_path):
    y, x = np.mgrid[0:40, 0:48] / 48.0
    path = tmp_path / "p.png"
    Image.fromarray(np.uint8(np.stack([x, y, 0.5 + 0.3 * np.sin(8 * x)], -1) * 255)).save(path)
    r = D.intra_cr(reg, str(path), "denoise", settings=D.InputSettings(synthesize=True), lam=0.5)
    for img, caption in r.negatives:
        assert img.size[0] == 48 and img.size[1] > 40 and "lambda" in caption
        assert (np.asarray(img)[40:] < 128).any()                         # text on the strip under it
