import json

import numpy as np
import pytest

from drcnet.eval import evaluate as ev
from drcnet.eval.baselines import BASELINES
from drcnet.data.datasets import FixedEvalSet
from drcnet.core.metrics import psnr


def tiny_images():
    """Two small smooth photos-like images (a noise-free ramp with a few edges)."""
    y, x = np.mgrid[0:64, 0:64] / 64.0
    a = np.stack([0.3 + 0.4 * x, 0.2 + 0.5 * y, 0.5 + 0.2 * (x > 0.5)], -1)
    b = np.stack([0.6 - 0.3 * y, 0.4 + 0.3 * (y > 0.3), 0.3 + 0.4 * x * y], -1)
    return {"a": a.astype(np.float32), "b": b.astype(np.float32)}


def test_identity_restorer_equals_input_and_baselines_denoise():
    results = ev.evaluate("denoise", lambda img: img, tiny_images(), settings=["sigma25"])
    mean = results["mean"]["sigma25"]
    assert mean["drcnet"] == pytest.approx(mean["input"])
    for name in BASELINES["denoise"]:
        assert mean[name]["psnr"] > mean["input"]["psnr"] + 3, name
    assert set(results["per_image"]["sigma25"]) == {"a", "b"}
    red = results["reductions"]["sigma25"]
    assert red["drcnet_vs_input"]["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert red["drcnet_vs_best_baseline"]["rmse"] < 0
    assert "| drcnet |" in ev.markdown_table(results)


def test_deblur_and_derain_run_and_derain_uses_y():
    images = {"a": tiny_images()["a"]}
    deblur = ev.evaluate("deblur", None, images, settings=["kernel13_seed101"])
    assert "drcnet" not in deblur["methods"] and "wiener_nonblind" in deblur["methods"]
    scores = deblur["mean"]["kernel13_seed101"]
    assert scores["wiener_nonblind"]["psnr"] > scores["input"]["psnr"] + 1      # the true kernel undoes the blur
    derain = ev.evaluate("derain", None, images, settings=["light"])
    light = derain["mean"]["light"]
    assert derain["y_channel"] and light["median5x5"]["psnr"] > light["input"]["psnr"]
    # the scores are PSNR on Y (BT.601), as derain papers report them, not on RGB (the two differ by ~1 dB here)
    item = FixedEvalSet(images, "derain", ["light"])[0]
    y, rgb = psnr(item["degraded"], item["clean"], y_channel=True), psnr(item["degraded"], item["clean"])
    assert light["input"]["psnr"] == pytest.approx(y, abs=1e-9) and abs(y - rgb) > 0.5
    assert deblur["mean"]["kernel13_seed101"]["input"]["psnr"] == pytest.approx(
        psnr(*(FixedEvalSet(images, "deblur", ["kernel13_seed101"])[0][k] for k in ("degraded", "clean"))), abs=1e-9)


def test_cli_writes_json_for_a_folder(tmp_path, capsys):
    from PIL import Image

    for name, img in tiny_images().items():
        Image.fromarray((img * 255).round().astype(np.uint8)).save(tmp_path / f"{name}.png")
    out = tmp_path / "r.json"
    ev.main(["--task", "denoise", "--set", str(tmp_path), "--settings", "sigma15", "--baselines", "tv_chambolle",
             "--json", str(out), "--quiet"])
    data = json.loads(out.read_text())
    assert data["methods"] == ["input", "tv_chambolle"] and set(data["per_image"]["sigma15"]) == {"a.png", "b.png"}
    assert "sigma15" in capsys.readouterr().out
