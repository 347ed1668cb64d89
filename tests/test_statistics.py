"""Statistics matched to training (drcnet/serve/engine.py, STATISTICS; issue "Safe on every photo"): by default the
engine restores in tiles of the checkpoint's training patch, so every DFR block normalises over the field it was
trained on; "whole" keeps the paper's one pass over the whole image."""
import numpy as np
import pytest
import torch
from PIL import Image

import drcnet
from drcnet.serve.engine import MATCHED_OVERLAP, Restorer


def _restorer(patch=128, statistics="matched"):
    torch.manual_seed(0)
    meta = {"training": {"patch": patch}} if patch else {}
    return Restorer(drcnet.create_model("tiny"), device="cpu", precision="fp32", meta=meta, statistics=statistics)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).random((320, 288, 3)).astype(np.float32)


def test_matched_restores_in_overlapping_tiles_of_the_training_patch(image):
    r = _restorer(128)
    assert r.statistics == "matched"
    matched = r.restore(image, tile=0)                    # "no tiling" still means: the training field
    assert r.last_stats["tiles"] == 3 * 3 and r.last_stats["statistics"] == "matched"
    with r.using(statistics="whole"):
        by_hand = r.restore(image, tile=128, overlap=128 // MATCHED_OVERLAP)
        whole = r.restore(image, tile=0)
        assert r.last_stats["tiles"] == 1 and r.last_stats["statistics"] == "whole"
    np.testing.assert_array_equal(matched, by_hand)
    assert np.abs(matched - whole).max() > 1e-4           # the field changes the result
    assert r.statistics == "matched"                      # put back after the block


def test_a_smaller_requested_tile_is_kept_and_an_image_within_the_patch_runs_whole(image):
    r = _restorer(128)
    r.restore(image, tile=96, overlap=24)
    assert r.last_stats["tiles"] == 5 * 4          # 96 px tiles with stride 72 over 320 x 288
    small = image[:100, :120]
    r.restore(small, tile=0)
    assert r.last_stats["tiles"] == 1


def test_a_checkpoint_without_a_training_patch_runs_the_papers_way(image):
    r = _restorer(None)
    assert r.statistics == "whole" and "whole image" in r.describe_statistics()
    r.restore(image, tile=0)
    assert r.last_stats["tiles"] == 1


def test_the_facts_line_says_which_ran_and_bad_values_are_refused():
    r = _restorer(192)
    assert "192 px tiles, 48 px overlap" in r.describe_statistics()
    with pytest.raises(ValueError, match="statistics"):
        r.set_statistics("local")


def test_the_shipped_checkpoints_record_their_training_patch():
    for task in ("denoise", "derain", "deblur"):
        r = Restorer.from_checkpoint(f"checkpoints/{task}.safetensors", device="cpu")
        assert r.matched_patch == 128 and r.statistics == "matched"


def test_the_inspector_switch_runs_either_and_says_which(reg, tmp_path, monkeypatch):
    from drcnet import demo as D
    from drcnet.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "denoise.safetensors", drcnet.create_model("tiny"), task="denoise", preset="tiny",
                    training={"patch": 32})
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(tmp_path))
    reg.clear()
    photo = str(tmp_path / "photo.png")
    Image.fromarray((np.random.default_rng(0).random((80, 96, 3)) * 255).astype(np.uint8)).save(photo)
    try:
        matched = D.inspect(reg, photo, "denoise", 1, 0, 0.75, statistics="matched")
        whole = D.inspect(reg, photo, "denoise", 1, 0, 0.75, statistics="whole")
        assert "matched to training: 32 px tiles" in matched.facts and "whole image" in whole.facts
        assert np.abs(np.asarray(matched.after, float) - np.asarray(whole.after, float)).max() > 0
        assert matched.block.size == whole.block.size           # the maps: one whole pass either way
        restored = D.restore(reg, photo, "denoise")
        assert "matched to training" in restored.facts and restored.stats["tiles"] > 1
    finally:
        reg.clear()


def test_shipped_scores_from_before_matched_statistics_are_measured_again():
    """A candidate evaluated with "matched" statistics is never compared with scores made on whole images."""
    from drcnet.ops.release import same_protocol

    assert not same_protocol({"max_side": 256}, 256, "matched")          # saved before: whole images
    assert same_protocol({"max_side": 256, "statistics": "matched"}, 256, "matched")
    assert not same_protocol({"max_side": 512, "statistics": "matched"}, 256, "matched")
