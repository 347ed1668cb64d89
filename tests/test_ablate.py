"""scripts/ablate.py (drcnet/ops/ablation.py, ablation_report.py): the run list and its names, the repeats of the
closest contrasts, one tiny end-to-end study
of two variants on the CPU (same seed, iterations and schedule; table, plot and JSON written; resumable), and an
ablation checkpoint shipped with --ship that the app's Compare tab lists and runs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import drcnet
from drcnet.model.checkpoint import read_metadata, save_checkpoint
from drcnet.model.config import VARIANTS
from drcnet.train.config import LOSSES

from drcnet.ops import ablation as ablate
from drcnet.ops import ablation_report
from test_gpu_burst import write_photos

TABLE4 = ["base", "base+SF", "base+EA", "base+SF+identity", "base+SF+EA", "DFR"]


def names(runs):
    return [r.name for r in runs]


def test_the_run_list_is_table_4_with_intra_cr_and_dfr_with_each_loss():
    runs = ablate.plan(ablate.parse_args([]))
    assert len(runs) == 8 and len(set(names(runs))) == 8
    assert {r.variant for r in runs if r.loss == "intra-cr"} == set(TABLE4) == set(VARIANTS)
    assert {r.loss for r in runs if r.variant == "DFR"} == {"intra-cr", "l1", "extra-cr"} <= set(LOSSES)
    assert all(r.seed == 0 for r in runs)
    assert runs[0].name == ablate.REFERENCE == "DFR"          # the budget is fitted to the most expensive run
    # the names become checkpoints/denoise-<name>.safetensors and "DRCNet <name>" in the Compare tab
    assert all("/" not in n and " " not in n for n in names(runs))
    only = ablate.plan(ablate.parse_args(["--only", "base", "DFR-l1", "--seed", "3"]))
    assert names(only) == ["base", "DFR-l1"] and {r.seed for r in only} == {3}
    with pytest.raises(SystemExit):
        ablate.parse_args(["--only", "nonexistent"])
    with pytest.raises(SystemExit):                            # one budget: iterations or minutes
        ablate.parse_args(["--iters", "10", "--minutes", "2"])


def test_every_run_gets_the_same_training_command_but_its_variant_loss_and_seed():
    args = ablate.parse_args(["--iters", "1000", "--repeat-seed", "1"])
    stripped = set()
    for run in ablate.plan(args):
        cmd = ablate.train_cmd(run, args, Path("/x") / run.name, 1000)
        flags = {x: cmd[i + 1] for i, x in enumerate(cmd[:-1]) if x.startswith("--")}
        assert (flags["--variant"], flags["--loss"], flags["--seed"]) == (run.variant, run.loss, str(run.seed))
        assert "--resume" in cmd and flags["--iters"] == "1000" and flags["--val-every"] == "125"
        stripped.add(tuple(x for i, x in enumerate(cmd) if not (cmd[i - 1] in ("--variant", "--loss", "--seed",
                                                                                "--out") or x == "--resume")))
    assert len(stripped) == 1
    assert "--device" in cmd and ablate.parse_args(["--gpu"]).device == "cuda"


def test_repeat_seed_adds_exactly_the_default_pair_before_any_result():
    runs = ablate.plan(ablate.parse_args(["--repeat-seed", "1"]))
    added = runs[8:]
    assert names(added) == ["base+SF+EA-seed1", "DFR-seed1", "DFR-extra-cr-seed1"]
    assert [(r.variant, r.loss, r.seed) for r in added] == [("base+SF+EA", "intra-cr", 1), ("DFR", "intra-cr", 1),
                                                            ("DFR", "extra-cr", 1)]
    # one measurable contrast is not enough to choose two: still the documented pair
    one = {n: fake(30.0) for n in ("base", "base+SF")}
    assert ablate.closest_contrasts(one) == ablation_report.DEFAULT_CLOSEST


def fake(psnr: float) -> dict:
    return {s: {"psnr": psnr, "ssim": 0.8} for s in ablate.SIGMAS}


def test_repeat_seed_adds_exactly_the_two_measured_closest_contrasts():
    results = {"base": fake(28.0), "base+SF": fake(29.0), "base+EA": fake(28.01), "base+SF+identity": fake(29.5),
               "base+SF+EA": fake(30.0), "DFR": fake(31.0), "DFR-l1": fake(30.98), "DFR-extra-cr": fake(30.5)}
    assert ablate.closest_contrasts(results) == [("base", "base+EA"), ("DFR-l1", "DFR")]
    added = ablate.plan(ablate.parse_args(["--repeat-seed", "7"]), results)[8:]
    assert names(added) == ["base-seed7", "base+EA-seed7", "DFR-l1-seed7", "DFR-seed7"]
    assert {r.seed for r in added} == {7}
    # the verdicts: the seed difference is the noise a gain must exceed
    records = {n: {"test": r} for n, r in results.items()}
    records["DFR-seed7"] = {"test": fake(31.05)}
    noise = ablation_report.noise_estimate(records, 7)
    assert noise == pytest.approx(0.05)
    verdict = {(v["worse"], v["better"]): v["verdict"] for v in ablation_report.verdicts(records, noise)}
    assert verdict[("DFR-l1", "DFR")] == "within noise" and verdict[("base", "base+SF")] == "replicates"
    assert verdict[("base+SF", "base+SF+EA")] == "replicates"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two variants trained for 4 iterations on 32 px patches, evaluated on 2 small photos (about 10 s)."""
    root = tmp_path_factory.mktemp("ablation")
    write_photos(root / "photos", 3)
    write_photos(root / "test", 2, size=(48, 64), seed=2)
    argv = ["--out", str(root / "study"), "--only", "base", "DFR-l1", "--iters", "4", "--batch", "2",
            "--patch", "32", "--val-count", "2", "--val-size", "32", "--val-points", "2", "--threads", "1",
            "--max-side", "128", "--device", "cpu", "--data", str(root / "photos"),
            "--val-data", str(root / "photos"), "--test-data", str(root / "test")]
    report = ablate.main(argv)
    return root, argv, report


@pytest.mark.timeout(300)
def test_two_variants_train_alike_and_the_report_is_written(study):
    root, argv, report = study
    out = root / "study"
    runs = {n: read_metadata(out / n / "last.safetensors") for n in ("base", "DFR-l1")}
    assert (runs["base"]["config"]["variant"], runs["DFR-l1"]["config"]["variant"]) == ("base", "DFR")
    training = {n: m["training"] for n, m in runs.items()}
    for key in ("seed", "iterations", "planned_iterations", "batch", "patch", "lr", "lr_min", "schedule", "data",
                "validation"):
        assert training["base"][key] == training["DFR-l1"][key], key
    assert training["base"]["iterations"] == 4 and training["base"]["seed"] == 0
    assert (training["base"]["loss"], training["DFR-l1"]["loss"]) == ("intra-cr", "l1")
    # the results JSON: both runs, test scores at each sigma, validation curves from log.jsonl
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["runs"]) == {"base", "DFR-l1"} and saved["iters"] == 4
    for r in saved["runs"].values():
        assert set(r["test"]) == set(ablate.SIGMAS) and all(np.isfinite(v["psnr"]) for v in r["test"].values())
        assert [it for it, _ in r["curve"]] == [2, 4]
    assert report["runs"]["base"]["test"] == saved["runs"]["base"]["test"]
    table = (out / "results.md").read_text()
    assert ablation_report.PAPER_COLUMN in table
    assert "| base | base | intra-cr | 0 | 4 |" in table and "| DFR-l1 |" in table
    assert "not measured" in table
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # resumable: a second call trains nothing (the weights are untouched) and reports the same numbers
    before = {n: (out / n / "last.safetensors").stat().st_mtime_ns for n in runs}
    again = ablate.main(argv)
    assert {n: (out / n / "last.safetensors").stat().st_mtime_ns for n in runs} == before
    assert again["runs"]["DFR-l1"]["test"] == report["runs"]["DFR-l1"]["test"]


@pytest.mark.timeout(300)
def test_a_shipped_ablation_checkpoint_is_listed_and_runs_in_compare(study, tmp_path, monkeypatch):
    from safetensors import safe_open

    from drcnet import demo as D

    root, argv, _ = study
    ckdir = tmp_path / "checkpoints"
    torch.manual_seed(0)
    save_checkpoint(ckdir / "denoise.safetensors", drcnet.create_model("tiny"), task="denoise", preset="tiny")
    ablate.main(["--out", str(root / "study"), "--ship", "DFR-l1", "--checkpoints", str(ckdir)])
    shipped = ckdir / "denoise-DFR-l1.safetensors"
    with safe_open(str(shipped), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    meta = read_metadata(shipped)
    assert meta["task"] == "denoise" and meta["training"]["loss"] == "l1"
    assert set(meta["metrics"]["test"]) == set(ablate.SIGMAS)

    reg = D.Registry(ckdir)
    try:
        assert shipped in reg.ablations("denoise")
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:48, 0:64] / 64.0
        img = np.stack([x, y, 0.5 + 0.3 * np.sin(8 * x)], -1) + 0.05 * rng.random((48, 64, 3))
        photo = tmp_path / "photo.png"
        Image.fromarray(np.uint8(np.clip(img, 0, 1) * 255)).save(photo)
        steps = list(D.compare_steps(reg, str(photo), "denoise", D.InputSettings(synthesize=True, sigma=25)))
        result = steps[-1]
        rows = {row[0]: row for row in result.table}
        assert {"DRCNet", "DRCNet DFR-l1"} <= set(rows), result.notes
        assert np.isfinite(rows["DRCNet DFR-l1"][1]) and not any("failed" in n for n in result.notes)
        # the ablation's output is its own, not the main model's
        assert not np.array_equal(result.images["DRCNet DFR-l1"], result.images["DRCNet"])
        assert any(caption.startswith("DRCNet DFR-l1 (") for _, caption in result.gallery)
    finally:
        reg.clear()
