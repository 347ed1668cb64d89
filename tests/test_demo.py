"""drcnet.demo: the app's handlers as plain functions, on tiny random-init checkpoints (fast)."""
import os
import io

import numpy as np
import pytest
import torch
from PIL import Image

from drcnet import demo as D
from drcnet.train.losses import PAPER_LAMBDAS, IntraCR

from conftest import tiny_checkpoints


@pytest.fixture(scope="module")
def ckdir(tmp_path_factory):
    # deblur deliberately missing
    return tiny_checkpoints(tmp_path_factory.mktemp("ck"), ("denoise", "derain"), ablation=True)


pytestmark = pytest.mark.usefixtures("checkpoints_of_module")   # conftest: DRCNET_CHECKPOINTS = ckdir


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64] / 64.0
    img = np.stack([x, y, 0.5 + 0.3 * np.sin(8 * x)], -1) + 0.05 * rng.random((48, 64, 3))
    p = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray(np.uint8(np.clip(img, 0, 1) * 255)).save(p)
    return str(p)


def test_task_list_matches_degrade():
    from drcnet.core.tasks import TASKS
    assert D.TASKS == TASKS


def test_status_names_missing_checkpoint(reg, ckdir):
    st = reg.status()
    assert st["denoise"]["present"] and st["derain"]["present"] and not st["deblur"]["present"]
    md = D.status_markdown(reg)
    assert "deblur" in md and "no checkpoint" in md


def test_missing_checkpoint_is_a_clear_error_not_a_random_model(reg, photo):
    with pytest.raises(D.DemoError, match="deblur model is not available.*deblur.safetensors"):
        D.restore(reg, photo, "deblur")


def test_restore_plain_and_synthetic_with_metrics(reg, photo):
    r = D.restore(reg, photo, "denoise")
    from drcnet.core.device import pick_device
    assert r.after.size == (64, 48) and r.metrics is None and "1 tile" in r.facts
    assert f"device {pick_device(os.environ.get('DRCNET_DEVICE'))} |" in r.facts
    r = D.restore(reg, photo, "denoise", settings=D.InputSettings(synthesize=True, sigma=30, seed=1), stage1=True)
    assert set(r.metrics) == {"input", "drcnet"} and np.isfinite(r.metrics["drcnet"]["psnr"])
    assert r.stage1 is not None and "PSNR" in r.facts and "sigma 30" in r.facts
    # fixed seed: the same settings give the same degraded input, made afresh (not the prepared-input cache's
    # copy, which would make this check unable to fail), and another seed another one
    reg.clear()
    again = D.restore(reg, photo, "denoise", settings=D.InputSettings(synthesize=True, sigma=30, seed=1))
    assert np.array_equal(np.asarray(again.before), np.asarray(r.before))
    other = D.restore(reg, photo, "denoise", settings=D.InputSettings(synthesize=True, sigma=30, seed=2))
    assert not np.array_equal(np.asarray(other.before), np.asarray(r.before))


def test_model_is_cached_once_per_file(reg, photo):
    D.restore(reg, photo, "denoise")
    a = reg.model_for("denoise")
    D.restore(reg, photo, "denoise")
    assert reg.model_for("denoise") is a and len(reg.loaded()) == 1


def test_tiled_path_reports_progress(photo, tmp_path, monkeypatch):
    """Restore cuts the image as its checkpoint's inference spec says, with progress per batch of tiles."""
    import torch

    from drcnet import create_model
    from drcnet.model.checkpoint import save_checkpoint
    from drcnet.model.inference import InferenceSpec

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck" / "derain.safetensors", create_model("tiny"), task="derain", preset="tiny",
                    inference=InferenceSpec("matched", 128, 16, batch=2))
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(tmp_path / "ck"))
    reg = D.Registry()
    big = tmp_path / "big.png"
    Image.fromarray(np.uint8(np.random.default_rng(0).random((300, 280, 3)) * 255)).save(big)
    calls = []
    r = D.restore(reg, str(big), "derain", progress=lambda i, n: calls.append((i, n)))
    assert calls and calls[-1][0] == calls[-1][1] > 1 and f"{calls[-1][1]} tiles" in r.facts


def test_reference_upload_gives_metrics_and_size_mismatch_is_clear(reg, photo, tmp_path):
    r = D.restore(reg, photo, "derain", settings=D.InputSettings(reference=photo))
    assert r.metrics["input"]["psnr"] == float("inf")
    other = tmp_path / "other.png"
    Image.new("RGB", (10, 10)).save(other)
    with pytest.raises(D.DemoError, match="must match"):
        D.restore(reg, photo, "derain", settings=D.InputSettings(reference=str(other)))


def test_rgba_grey_and_16bit_inputs(reg, tmp_path):
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (40, 32), (200, 100, 50, 128)).save(rgba)
    r = D.restore(reg, str(rgba), "denoise")
    assert Image.open(r.download).mode == "RGBA" and "alpha" in r.facts
    grey = tmp_path / "grey.png"
    Image.new("L", (40, 32), 90).save(grey)
    assert Image.open(D.restore(reg, str(grey), "denoise").download).mode == "L"
    g16 = tmp_path / "g16.png"
    Image.fromarray(np.full((32, 40), 40000, np.uint16)).save(g16)
    r = D.restore(reg, str(g16), "denoise")
    assert "16-bit" in r.facts and Image.open(r.download).mode.startswith("I")   # 16-bit grey PNG


def test_inspect_maps_and_t_changes_the_mask(reg, photo):
    lo = D.inspect(reg, photo, "denoise", 1, 0, 0.1, settings=D.InputSettings(synthesize=True))
    hi = D.inspect(reg, photo, "denoise", 1, 0, 0.95, settings=D.InputSettings(synthesize=True))
    assert set(lo.coverage) == {(s, l) for s in (1, 2) for l in range(4)}
    assert lo.coverage[(1, 0)] >= hi.coverage[(1, 0)]
    assert lo.coverage != hi.coverage
    assert lo.block.size[0] > 300 and lo.overview.size[0] > 300 and lo.metrics is not None
    # the threshold goes back to the checkpoint's t after the inspector ran
    assert reg.model_for("denoise").model.cfg.t == pytest.approx(0.75)
    with pytest.raises(D.DemoError, match="level"):
        D.inspect(reg, photo, "denoise", 1, 9, 0.5)


def test_inspect_downscales_to_limit(tmp_path):
    reg = D.Registry(limits=D.Limits(inspect_max_side=64))
    big = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), (120, 130, 140)).save(big)
    r = D.inspect(reg, str(big), "denoise", 2, 1, 0.75)
    assert r.after.size == (64, 32) and "64x32" in r.facts


@pytest.fixture(scope="module")
def inspected(reg, ckdir, photo):
    """One inspect at t = 0.5 shared by the tests that only read it (its two figures take ~2 s to draw), with the
    model it ran on and the figures left open right after it."""
    import matplotlib.pyplot as plt
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRCNET_CHECKPOINTS", str(ckdir))
        result = D.inspect(reg, photo, "denoise", 1, 0, 0.5)
        model = reg.model_for("denoise").model
        figures = plt.get_fignums()
        reg.clear()
    return result, model, figures


def test_probe_hooks_are_removed_after_inspect(inspected):
    _, model, _ = inspected           # the probe attaches to every block, whichever one the inspector shows
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_t_sweep_rows(reg, photo):
    plot, rows = D.t_sweep(reg, photo, "denoise", 1, 0, settings=D.InputSettings(synthesize=True), ts=(0.2, 0.6, 1.0))
    assert [r["t"] for r in rows] == [0.2, 0.6, 1.0] and all(r["psnr"] is not None for r in rows)
    covs = [r["coverage"] for r in rows]
    assert covs == sorted(covs, reverse=True) and covs[0] > covs[-1]     # t moves the mask (not a constant)
    assert plot.size[0] > 200


def test_cr_ratios_match_the_project_loss(reg):
    g = torch.Generator().manual_seed(0)
    x, j, i = (torch.rand(1, 3, 32, 32, generator=g) for _ in range(3))
    from drcnet.train.losses import mixup_negatives
    ours = D.cr_ratios(reg.vgg(), x, j, mixup_negatives(i, j, PAPER_LAMBDAS), c=PAPER_LAMBDAS)
    ref = IntraCR(vgg=reg.vgg()).layer_ratios(x, j, i).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_intra_cr_explorer(reg, photo):
    r = D.intra_cr(reg, photo, "denoise", settings=D.InputSettings(synthesize=True), lam=0.5)
    assert len(r.negatives) == 4 and "0.5" in r.negatives[-1][1]
    assert len(r.table) == 6 and r.headers[2:5] == ["relu1_1", "relu2_1", "relu3_1"]
    clean_rows = [row for row in r.table if row[0] == "clean J"]
    assert all(v == 0 for row in clean_rows for v in row[2:])     # d(J, J) = 0
    with pytest.raises(D.DemoError, match="clean"):
        D.intra_cr(reg, photo, "denoise", settings=D.InputSettings(synthesize=False))


def test_compare_lists_ablation_and_baselines(reg, photo, compared):
    r = compared
    names = [row[0] for row in r.table]
    assert {"input (degraded)", "DRCNet", "DRCNet stage 1", "DRCNet l1", "nlm"} <= set(names)
    assert all(row[1] is not None for row in r.table) and len(r.gallery) == len(r.table) + 1
    r = D.compare(reg, photo, "deblur")     # no checkpoint, real photo: baselines only, nonblind skipped
    assert "DRCNet" not in [row[0] for row in r.table]
    assert any("missing" in n for n in r.notes) and any("nonblind" in n for n in r.notes)


@pytest.fixture(scope="module")
def compared(reg, ckdir, photo):
    """One synthetic denoise comparison shared by the tests that only read it (each run takes seconds)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRCNET_CHECKPOINTS", str(ckdir))
        return D.compare(reg, photo, "denoise", settings=D.InputSettings(synthesize=True, sigma=20))


def test_compare_table_sorted_with_the_winner_marked(reg, photo, compared, monkeypatch):
    r = compared
    psnrs = [row[1] for row in r.table]
    assert psnrs == sorted(psnrs, reverse=True) and r.headers[-1] == "rank"
    marked = [row for row in r.table if "best" in row[-1]]
    best = max((row for row in r.table if row[0] != "input (degraded)"), key=lambda row: row[1])
    assert marked == [best]
    # the gallery follows the table's order after input and clean reference
    assert [g[1].split(" (")[0] for g in r.gallery[2:]] == [row[0] for row in r.table if row[0] != "input (degraded)"]
    # without a reference: no ranking, nothing marked (BM3D, ~2 s a call, stands aside: ranking is not its job)
    from drcnet.eval import baselines
    monkeypatch.delitem(baselines.BASELINES["denoise"], "bm3d", raising=False)
    table = D.compare(reg, photo, "denoise").table
    assert len(table) > 2 and all(row[-1] == "" for row in table)


def test_compare_yields_fast_results_before_the_slow_baseline(reg, photo, monkeypatch):
    """BM3D (tens of seconds) must not hold back DRCNet and the quick baselines: a first step without it."""
    from drcnet.eval import baselines
    from drcnet.demo import compare_tab
    calls = []

    def slow(x, info):
        calls.append("bm3d")
        return x
    monkeypatch.setitem(baselines.BASELINES["denoise"], "bm3d", slow)
    steps = D.compare_steps(reg, photo, "denoise", settings=D.InputSettings(synthesize=True))
    first = next(steps)
    assert calls == [] and "bm3d" not in first.images and first.pending == ["bm3d"]
    assert "DRCNet" in first.images and "nlm" in first.images and any("bm3d still running" in n for n in first.notes)
    last = list(steps)[-1]
    assert calls == ["bm3d"] and "bm3d" in last.images and last.pending == []
    assert compare_tab.SLOW == {"bm3d"}


def test_compare_pair_zoom_and_figure(reg, compared):
    r = compared
    left, right = D.compare_pair(r.images, "DRCNet", "clean reference")
    assert left.size == right.size == (64, 48)
    assert np.array_equal(np.asarray(right), r.images["clean reference"])
    with pytest.raises(D.DemoError, match="not among"):
        D.compare_pair(r.images, "DRCNet", "nonexistent")
    with pytest.raises(D.DemoError, match="Compare button"):
        D.compare_pair(None, "DRCNet", "nlm")
    crops = D.zoom_crops(r.images, 60, 2, size=16, display=64, table=r.table)   # near the corner: box moves in
    assert len(crops) == len(r.images) and len({c.size for c, _ in crops}) == 1     # one height for the row
    # the table's order (best PSNR first), the clean reference first; short labels with the PSNR
    table_names = [row[0] for row in r.table]
    assert [label.split(" ")[0] for _, label in crops] == \
        ["clean"] + [D.short_name(n).split(" ")[0] for n in table_names]
    assert crops[1][1] == f"{D.short_name(table_names[0])} {r.table[0][1]:.2f} dB"
    name = "DRCNet"
    k = 1 + table_names.index(name)
    picture = np.asarray(crops[k][0])[:64]                               # the label sits under the crop
    assert np.array_equal(picture[::4, ::4], r.images[name][0:16, 48:64])  # the same crop, enlarged 4x
    assert (np.asarray(crops[k][0])[64:] > 0).any() and crops[k][0].size[1] > 64
    png, pdf = D.compare_figure(reg, r.images, r.table, (30, 20), size=16, dpi=60)
    assert pdf.read_bytes()[:4] == b"%PDF"


def test_zoom_source_fills_the_box_and_clicks_map_back(reg, compared):
    """Gradio never enlarges the clicked picture (object-fit: scale-down) and ignores clicks beside it: the zoom
    source is the input enlarged with pixel copies, and a click on it maps back to the results' pixels."""
    from drcnet.demo.compare_tab import ZOOM_VIEW, zoom_scale
    r = compared
    view = D.zoom_source(r.images)
    s = zoom_scale(r.images["DRCNet"].shape)
    assert s == 8 and view.size == (64 * s, 48 * s) and max(view.size) >= ZOOM_VIEW
    assert np.array_equal(np.asarray(view)[::s, ::s], r.images["input (degraded)"])
    assert D.zoom_point(r.images, 8 * 30 + 7, 8 * 20) == (30, 20)
    assert zoom_scale((512, 384, 3)) == 1 and zoom_scale((300, 200)) == 2
    with pytest.raises(D.DemoError, match="Compare button"):
        D.zoom_source(None)
    png, pdf = D.compare_figure(reg, r.images, r.table, (30, 20), size=16, dpi=60)
    assert pdf.read_bytes()[:4] == b"%PDF" and Image.open(png).size[0] > 600
    import matplotlib.pyplot as plt
    assert plt.get_fignums() == []


def test_figures_are_closed(reg, photo, inspected):
    import matplotlib.pyplot as plt
    assert inspected[2] == []                       # none left open by inspect
    D.t_sweep(reg, photo, "denoise", ts=(0.5,))
    assert plt.get_fignums() == []


def test_examples_exist_and_are_small():
    rows = D.examples()
    assert {r[1] for r in rows} == {"denoise", "derain", "deblur"}
    for task in ("denoise", "derain", "deblur"):
        assert len(D.examples(task)) >= 3
    from pathlib import Path
    for r in rows:
        for p in (r[0], r[2]):
            if p:
                assert Path(p).is_file() and Path(p).stat().st_size < 300_000


def test_no_server_paths_in_status_or_errors(reg, ckdir, photo, tmp_path, monkeypatch):
    md = D.status_markdown(reg)
    assert str(ckdir) not in md and "denoise.safetensors" in md
    assert all("/" not in info["file"] for info in reg.status().values())
    with pytest.raises(D.DemoError) as e:
        D.restore(reg, photo, "deblur")
    assert str(ckdir) not in str(e.value) and "deblur.safetensors" in str(e.value)
    # a damaged checkpoint: the loader's message names the full path; the status shows the file name only
    bad = tmp_path / "denoise.safetensors"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(tmp_path))
    st = reg.status()["denoise"]
    assert not st["present"] and "denoise.safetensors" in st["note"] and str(tmp_path) not in st["note"]
    assert D.hide_paths(f"{tmp_path}/x.safetensors: corrupt") == "x.safetensors: corrupt"


# ---------------------------------------------------------------- Inspect DFR: histograms, quantile control

def test_t_at_quantile_sets_the_coverage():
    r = np.linspace(0.47, 0.51, 1000).reshape(25, 40)
    t = D.t_at_quantile(r, 0.9)
    assert 0.505 < t < 0.507 and 0.1 <= (r >= t).mean() < 0.102
    assert D.t_at_quantile(r, 0.0) <= r.min() and (r >= D.t_at_quantile(r, 0.0)).all()
    with pytest.raises(D.DemoError, match="quantile"):
        D.t_at_quantile(r, 1.5)


def test_t_at_quantile_writes_four_decimals_without_float_noise():
    """The t box showed 0.494100004: a float32 map's quantile floored in float32."""
    r = np.random.default_rng(0).uniform(0.47, 0.51, (50, 50)).astype(np.float32)
    for q in (0.1, 0.3, 0.5, 0.9, 0.99):
        t = D.t_at_quantile(r, q)
        assert type(t) is float and t == round(t, 4) and len(repr(t)) <= 6, repr(t)
        assert t <= np.quantile(r, q) and (r >= t).mean() >= 1 - q     # still never empties the mask


def test_empty_mask_is_explained_and_the_quantile_control_fills_it(reg, photo):
    first = D.inspect(reg, photo, "denoise", 1, 0, 1.0)
    top = float(D.probe_run(reg.model_for("denoise"), D.prepare_small(reg, photo, "denoise", D.InputSettings())
                            .degraded, 1.0)[1][(1, 0)].response.max())
    assert top < 1.0 and first.coverage[(1, 0)] == 0
    assert "No pixel reaches t = 1.000" in first.facts and "whole map" in first.facts
    t = D.quantile_t(reg, photo, "denoise", 1, 0, 1.0, 0.8)
    after = D.inspect(reg, photo, "denoise", 1, 0, t)
    # stage 1 level 0 sees the input only, so its map does not depend on t: coverage 1 - q (t is floored to 1e-4)
    assert 0.2 <= after.coverage[(1, 0)] < 0.3 and "No pixel" not in after.facts.split("**S1 L0**")[1]
    assert "% of the pixels have M_sr >= t" in after.facts


def test_block_figure_has_fitted_colour_scale_and_histogram(inspected):
    from drcnet.demo.map_pictures import OVERVIEW_PANEL, PANEL, fitted_range
    assert fitted_range(np.array([[0.47, 0.51]])) == (0.47, 0.51)
    lo, hi = fitted_range(np.full((2, 2), 0.5))
    assert lo < 0.5 < hi                                     # a flat map still gets a drawable scale
    r = inspected[0]
    assert r.block.size[0] >= 4 * PANEL and r.block.size[1] >= 2 * PANEL              # 2 rows of 4 panels
    assert r.overview.size[0] >= 4 * OVERVIEW_PANEL and r.overview.size[1] > 2 * OVERVIEW_PANEL  # a row per stage


def test_inspect_figure_download_is_high_resolution_png_and_pdf(reg, photo):
    png, pdf = D.inspect_figure(reg, photo, "denoise", 2, 1, 0.6, dpi=120)
    assert png.suffix == ".png" and pdf.suffix == ".pdf" and pdf.read_bytes()[:4] == b"%PDF"
    assert Image.open(png).size[0] > 1500                    # 16 in at 120 dpi
    import matplotlib.pyplot as plt
    assert plt.get_fignums() == []


def test_example_gallery_captions_match_the_rows():
    gallery, rows = D.example_gallery(), D.examples()
    assert [g[0] for g in gallery] == [r[0] for r in rows]           # index i of the gallery fills row i
    captions = [g[1] for g in gallery]
    assert "denoise, sigma 25" in captions and "deblur, real camera shake" in captions
    assert "derain, heavy rain" in captions and "deblur, 21 px blur" in captions
    assert all(c.split(",")[0] == r[1] for c, r in zip(captions, rows))
    assert not any("true" in c.lower() or "false" in c.lower() for c in captions)   # no raw parameters
    # a real degraded photo for denoise (Hubble) and deblur (clock); none exists for rain (assets/README.md)
    assert {"denoise", "deblur"} <= {r[1] for r in rows if r[2] is None and not r[3]}


def test_make_assets_reproduces_every_example_row_and_picture(tmp_path):
    """Regenerating the assets keeps the hand-curated parts: the Hubble low-light photo and the captions."""
    import json

    from drcnet.demo.assets import make_assets
    make_assets(tmp_path)
    made = json.loads((tmp_path / "examples.json").read_text())
    assert made == json.loads((D.ASSETS / "examples.json").read_text())
    assert {e["input"]: e.get("caption") for e in made if e.get("caption")} == {
        "hubble_noise.png": "denoise, real noise (Hubble)", "clock_motion.png": "deblur, real camera shake"}
    committed = {p.name for p in D.ASSETS.glob("*.png")}
    assert {p.name for p in tmp_path.glob("*.png")} == committed
    for name in sorted(committed):
        a, b = Image.open(tmp_path / name), Image.open(D.ASSETS / name)
        assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b)), name


def test_display_png_keeps_every_pixel_and_is_written_at_the_fast_level(reg, tmp_path):
    """The page's before/after images are PNG files the app writes at zlib level 1 (Gradio would re-encode a PIL
    image at its default level): lossless, and zlib-1 leaves a larger file than Pillow's default would."""
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(0, 3, (96, 128, 3)), axis=1) % 256
    image = Image.fromarray(smooth.astype(np.uint8))
    path = reg.outputs.display_png(image, "after")
    assert path.endswith(".png") and os.path.dirname(path) == str(reg.outputs.folder())
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(image))
    default = io.BytesIO()
    image.save(default, format="PNG")
    assert os.path.getsize(path) > len(default.getvalue())


def test_the_same_pixels_are_encoded_once_and_served_again(reg, tmp_path, monkeypatch):
    """The inspector's next t shows the same "before", and a plain RGB result is also the download: one PNG each.
    Other pixels get their own file; a file the folder's cleanup removed is written again."""
    from drcnet.demo.inputs import prepare
    from drcnet.demo.outputs import OutputFolder

    saves = []
    real_save = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", lambda self, *a, **kw: (saves.append(a[0]), real_save(self, *a, **kw)))
    out = OutputFolder()
    image = Image.fromarray((np.arange(64 * 48 * 3) % 251).reshape(64, 48, 3).astype(np.uint8))
    first = out.display_png(image, "before")
    assert out.display_png(image.copy(), "before") == first and len(saves) == 1
    other = image.point(lambda v: 255 - v)
    assert out.display_png(other, "after") != first and len(saves) == 2
    os.remove(first)
    assert os.path.isfile(out.display_png(image, "before")) and len(saves) == 3
    real_save(Image.fromarray(np.asarray(image)), tmp_path / "upload.png")
    prepared = prepare(str(tmp_path / "upload.png"), "denoise", D.InputSettings())
    restored = np.asarray(other, np.float32) / 255
    download = out.result_file(prepared, restored)             # the "after" file above has another name
    assert download.name.startswith("upload_restored") and len(saves) == 4
    assert out.display_png(other, "after") == str(download) and len(saves) == 4     # the download serves the page
    assert out.result_file(prepared, restored) == download and len(saves) == 4


def test_the_trained_t_is_where_the_inspector_starts(tmp_path, photo):
    """A checkpoint trained at another t (the official weights use 0.8): the registry reads it from the header,
    and the inspector without a t (the API default; the slider starts there) runs at it."""
    import drcnet
    from drcnet.model.checkpoint import save_checkpoint
    from drcnet.model.config import T_DEFAULT

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "denoise.safetensors", drcnet.create_model("tiny", t=0.6), task="denoise",
                    preset="tiny")
    reg = D.Registry(tmp_path)
    assert reg.trained_t("denoise") == pytest.approx(0.6) and reg.trained_t("derain") == T_DEFAULT
    r = D.inspect(reg, photo, "denoise", 1, 0)
    assert r.facts.startswith("t = 0.60 |")


def test_input_settings_hold_the_defaults_once():
    s = D.InputSettings()
    assert s.as_row() == [None, False, 25, "light", 21, 0]
    assert D.InputSettings.from_example({"task": "deblur", "settings": {"size": 13}}).blur_size == 13
    assert s.degradation("denoise") == {"sigma": 25.0} and s.degradation("deblur") == {"size": 21}
    with pytest.raises(D.DemoError, match="sigma"):
        D.InputSettings(sigma=200).degradation("denoise")


def test_status_says_when_its_iterations_are_only_the_last_run_on_earlier_weights(tmp_path):
    from drcnet import create_model, save_checkpoint
    save_checkpoint(tmp_path / "denoise.safetensors", create_model("tiny"), task="denoise", preset="tiny",
                    training={"iterations": 206, "init": "denoise.safetensors"})
    save_checkpoint(tmp_path / "derain.safetensors", create_model("tiny"), task="derain", preset="tiny",
                    training={"iterations": 5000})
    st = D.Registry(tmp_path).status()
    assert st["denoise"]["note"] == "its last run: 206 iterations, on earlier weights"
    assert st["derain"]["note"] == "5000 iterations"
