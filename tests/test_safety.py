"""The safety gate (drcnet/eval/safety.py) on the shipped checkpoints: clean and lightly degraded photos come back
nearly unchanged at the app's sizes, and the examples grow no colour blotch. The same gate runs when a checkpoint
is shipped (drcnet.ops.release), on the test photos."""
import numpy as np
import pytest

from drcnet.eval import safety
from drcnet.serve.engine import Restorer


@pytest.fixture(scope="module")
def photos():
    return safety.suite_photos()


@pytest.mark.parametrize("task", ["denoise", "derain", "deblur"])
def test_shipped_checkpoint_passes_the_safety_gate(task, photos):
    restorer = Restorer.from_checkpoint(f"checkpoints/{task}.safetensors")
    result = safety.gate(task, restorer, photos, sizes=(512,))
    assert result["failures"] == [], "\n" + result["table"] + "\n" + "\n".join(result["failures"])
    assert result["examples"], "every task has examples in assets/examples.json"


def test_the_gate_fails_the_papers_whole_image_statistics_on_denoise(photos):
    """What the gate is for: the shipped denoise weights run over whole images (the behaviour before the
    matched statistics) paint colour blocks over the clean, smooth photos."""
    restorer = Restorer.from_checkpoint("checkpoints/denoise.safetensors", statistics="whole")
    result = safety.gate("denoise", restorer, {k: v for k, v in photos.items() if "@512" in k}, sizes=(512,))
    assert any("block moved" in f for f in result["failures"]), result["table"]
    assert any("on average" in f for f in result["failures"]), result["table"]


def test_block_move_sees_a_blotch_and_not_detail():
    rng = np.random.default_rng(0)
    photo = rng.random((64, 64, 3)).astype(np.float32)
    sharpened = np.clip(photo + 0.2 * rng.standard_normal(photo.shape), 0, 1).astype(np.float32)
    assert safety.block_move(sharpened, photo) < 10
    blotch = photo.copy()
    blotch[:32, :32, 0] = np.clip(blotch[:32, :32, 0] + 0.3, 0, 1)
    assert safety.block_move(blotch, photo) > 40


def test_report_bounds_and_summary():
    report = safety.Report("denoise", rows=[
        {"photo": "a", "size": 512, "setting": "clean", "psnr": 38.0, "block_move": 2.0, "pixels_off": 0},
        {"photo": "b", "size": 512, "setting": "clean", "psnr": 29.0, "block_move": 50.0, "pixels_off": 9},
        {"photo": "b", "size": 512, "setting": "sigma5", "psnr": 27.0, "block_move": 3.0, "pixels_off": 0}])
    failures = report.failures()
    assert any("on average" in f for f in failures)            # (38 + 29) / 2 < 34
    assert any("b at 512 px, clean: 29.00 dB (bound 30.00 dB)" in f for f in failures)
    assert any("moved by 50" in f for f in failures)
    assert any("sigma5: 27.00 dB" in f for f in failures)
    assert report.summary()[512]["clean"]["worst"] == 29.0
    ok = safety.Report("deblur", rows=[{"photo": "a", "size": 256, "setting": "clean", "psnr": 31.0,
                                        "block_move": 5.0, "pixels_off": 0}])
    assert ok.failures() == []                                  # deblur sharpens: 30 dB on average
    light = safety.Report("deblur", rows=[
        {"photo": "a", "size": 256, "setting": "kernel7", "psnr": 24.5, "input_psnr": 25.0, "block_move": 1.0},
        {"photo": "b", "size": 256, "setting": "kernel7", "psnr": 23.5, "input_psnr": 25.0, "block_move": 1.0}])
    assert [f for f in light.failures() if "kernel7" in f] == ["b at 256 px, kernel7: 23.50 dB (bound 24.00 dB)"]


def test_examples_with_a_reference_are_judged_against_it(tmp_path):
    """Heavy rain darkens a block by 50 grey levels: a restore that gives the clean photo back moves that block by
    50 from its input, which is the task done; a restore that paints a blotch moves it away from the clean photo.
    The gate must pass the first and fail the second (it failed both when it measured against the input)."""
    import json
    from PIL import Image

    rng = np.random.default_rng(0)
    clean = (0.3 + 0.4 * rng.random((64, 64, 3))).astype(np.float32)
    rainy = clean.copy()
    rainy[:32, :32] -= 50 / 255
    for name, image in (("x_clean.png", clean), ("x_derain.png", rainy), ("y_noise.png", clean)):
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(tmp_path / name)
    (tmp_path / "examples.json").write_text(json.dumps([
        {"task": "derain", "input": "x_derain.png", "reference": "x_clean.png"},
        {"task": "derain", "input": "y_noise.png", "reference": None}]))
    references = safety.example_references("derain", tmp_path)
    assert "y_noise.png" not in references and references["x_derain.png"].shape == clean.shape

    def restored(photo):          # the rain taken off: the clean photo for the rainy one, the others unchanged
        return clean if np.allclose(photo, rainy, atol=1 / 255) else photo

    moves = safety.example_moves("derain", restored, tmp_path)
    assert moves["x_derain.png"] < 1 and moves["y_noise.png"] < 1
    assert safety.block_move(clean, rainy) > safety.BLOCK_MOVE    # what the old measure saw

    def blotch(photo):
        out = photo.copy()
        out[32:, 32:, 1] += 45 / 255
        return out

    moves = safety.example_moves("derain", blotch, tmp_path)
    assert moves["x_derain.png"] > safety.BLOCK_MOVE and moves["y_noise.png"] > safety.BLOCK_MOVE
