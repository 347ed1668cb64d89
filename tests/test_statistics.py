"""Statistics matched to training, as one explicit fact of the checkpoint (drcnet/model/inference.py): by default
the engine restores in the tiles of the checkpoint's inference spec, so every DFR block normalises over about the
field it was trained on; "whole" keeps the paper's one pass over the whole image."""
import numpy as np
import pytest
import torch
from PIL import Image

import drcnet
from drcnet.model.checkpoint import read_metadata, save_checkpoint
from drcnet.model.inference import InferenceSpec, tile_for_patch
from drcnet.serve.engine import Restorer


def _restorer(patch=128, statistics=None):
    torch.manual_seed(0)
    meta = {"training": {"patch": patch}} if patch else {}
    return Restorer(drcnet.create_model("tiny"), device="cpu", precision="fp32", meta=meta, statistics=statistics)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).random((320, 288, 3)).astype(np.float32)


def test_matched_restores_in_the_overlapping_tiles_of_the_spec(image):
    r = _restorer(128)
    spec = r.spec
    assert r.statistics == "matched" and spec.tile == tile_for_patch(128) and spec.tile > 128
    matched = r.restore(image)
    assert r.last_stats["tiles"] == 2 * 2 and r.last_stats["statistics"] == "matched"
    with r.using(statistics="whole"):
        by_hand = r.restore(image, tile=spec.tile, overlap=spec.overlap)
        whole = r.restore(image, tile=0)
        assert r.last_stats["tiles"] == 1 and r.last_stats["statistics"] == "whole"
    np.testing.assert_allclose(matched, by_hand, atol=1e-6)   # batched or one by one: per-sample statistics
    assert np.abs(matched - whole).max() > 1e-4           # the field changes the result
    assert r.statistics == "matched"                      # put back after the block


def test_matched_statistics_refuse_a_tile_from_the_caller(image):
    """The tiling is the checkpoint's fact: a caller's tile would silently change the statistics."""
    r = _restorer(128)
    with pytest.raises(ValueError, match="inference spec"):
        r.restore(image, tile=96)
    custom = Restorer(r.model, device="cpu", precision="fp32", spec=InferenceSpec("matched", 96, 24))
    custom.restore(image)
    assert custom.last_stats["tiles"] == 5 * 4            # 96 px tiles with stride 72 over 320 x 288
    custom.restore(image[:90, :80])                       # an image within one tile runs whole
    assert custom.last_stats["tiles"] == 1


def test_a_checkpoint_without_a_training_patch_runs_the_papers_way(image):
    r = _restorer(None)
    assert r.statistics == "whole" and "whole image" in r.describe_statistics()
    r.set_statistics("matched")                           # nothing to match: stays whole
    r.restore(image)
    assert r.last_stats["tiles"] == 1 and r.statistics == "whole"


def test_the_facts_line_says_which_ran_and_bad_values_are_refused():
    r = _restorer(192)
    assert f"{tile_for_patch(192)} px tiles, {r.spec.overlap} px overlap" in r.describe_statistics()
    with pytest.raises(ValueError, match="statistics"):
        r.set_statistics("local")
    with pytest.raises(ValueError, match="overlap"):
        InferenceSpec("matched", 64, 40)


def test_every_checkpoint_carries_its_inference_spec_under_its_own_key(tmp_path):
    """Renaming training.patch must not silently send a model back to whole-image statistics: the spec is
    written into the checkpoint by save_checkpoint and read from there."""
    for task in ("denoise", "derain", "deblur"):
        meta = read_metadata(f"checkpoints/{task}.safetensors")
        assert meta["inference"]["statistics"] == "matched" and meta["inference"]["tile"] > 0
        r = Restorer.from_checkpoint(f"checkpoints/{task}.safetensors", device="cpu")
        assert r.spec == InferenceSpec(**meta["inference"]) and r.statistics == "matched"
    path = save_checkpoint(tmp_path / "m.safetensors", drcnet.create_model("tiny"), training={"batch": 2},
                           inference=InferenceSpec("matched", 80, 8, 3))
    meta = read_metadata(path)
    assert "patch" not in meta["training"] and InferenceSpec.from_meta(meta) == InferenceSpec("matched", 80, 8, 3)


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
        assert matched.block.size == whole.block.size           # the maps at the image's size either way
        restored = D.restore(reg, photo, "denoise")
        assert "matched to training" in restored.facts and restored.stats["tiles"] > 1
    finally:
        reg.clear()


def test_shipped_scores_from_before_matched_statistics_are_measured_again():
    """A candidate evaluated with "matched" statistics is never compared with scores made on whole images."""
    from drcnet.ops.release import same_protocol

    now = _restorer(128).describe_statistics()
    assert not same_protocol({"max_side": 256}, 256, now)                  # saved before: whole images
    assert not same_protocol({"max_side": 256, "statistics": "matched"}, 256, now)   # before the spec: 128 px
    assert same_protocol({"max_side": 256, "statistics": now}, 256, now)
    assert not same_protocol({"max_side": 512, "statistics": now}, 256, now)
