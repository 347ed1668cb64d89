"""DRCNet as a Hub model (drcnet/model/hub_mixin.py, hub.py) and its cards (drcnet/model/card.py), all offline:
save_pretrained / from_pretrained through local folders and a pre-filled huggingface_hub cache, push_to_hub against
a fake HfApi, export-hub on the shipped checkpoint (restores bit for bit like it), and the cards' model-index
against the measured JSON."""
import json
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard, constants
from safetensors.torch import load_file, save_file

from drcnet import DRCNet, create_model, save_checkpoint
from drcnet.core.paths import SHIPPED, checkpoint_file
from drcnet.core.tasks import TASKS
from drcnet.model.card import split_front_matter
from drcnet.model.checkpoint import CheckpointError, load_checkpoint, read_metadata
from drcnet.model.hub import export_for_hub
from drcnet.ops.release import refresh_front_matter
from drcnet.serve.cli import main
from drcnet.serve.engine import Restorer

# Keys another issue adds to a checkpoint (e.g. "inference") must travel with the weights unchanged.
EXTRA = {"weights": "ema", "inference": {"statistics": "matched", "tile": 96, "overlap": 8, "batch": 4},
         "provenance": {"made_by": "tests/test_hub.py"}}


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.safetensors", create_model("tiny"), task="denoise", preset="tiny",
                           training={"iterations": 3, "patch": 64}, metrics={"test": {"s": {"drcnet": {"psnr": 1}}}},
                           extra=EXTRA)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_then_from_pretrained_gives_the_same_model_and_every_metadata_key(tiny_checkpoint, tmp_path):
    model, meta = load_checkpoint(tiny_checkpoint)
    folder = model.save_pretrained(tmp_path / "hub")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["config"] == model.cfg.to_dict()
    again = DRCNet.from_pretrained(folder)
    assert same_weights(model, again)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x)[1], again(x)[1])
    assert read_metadata(folder / "model.safetensors") == meta == again.checkpoint_metadata   # every key, as read
    assert {"weights", "inference", "provenance"} <= meta.keys()
    again.save_pretrained(tmp_path / "again")                                          # and on through another save
    assert read_metadata(tmp_path / "again" / "model.safetensors") == meta


def test_from_pretrained_is_strict_and_config_json_must_agree(tiny_checkpoint, tmp_path):
    model, _ = load_checkpoint(tiny_checkpoint)
    folder = model.save_pretrained(tmp_path / "hub")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["t"] = 0.5
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"disagrees .* \['t'\]"):
        DRCNet.from_pretrained(folder)
    (folder / "config.json").unlink()                      # the weights file alone is enough (timm-style)
    assert same_weights(model, DRCNet.from_pretrained(folder))
    weights = folder / "model.safetensors"
    state, meta = load_file(str(weights)), read_metadata(weights)
    state.pop(sorted(state)[0])
    save_file(state, str(weights), metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    with pytest.raises(CheckpointError, match="missing keys"):
        DRCNet.from_pretrained(folder)


def fill_hub_cache(cache, repo_id: str, folder) -> None:
    """huggingface_hub's cache layout, as a download would leave it: refs/main -> snapshots/<commit>/files."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())


def test_from_pretrained_a_hub_id_offline_from_the_usual_cache(tiny_checkpoint, tmp_path, monkeypatch):
    model, _ = load_checkpoint(tiny_checkpoint)
    cache = tmp_path / "hf" / "hub"
    fill_hub_cache(cache, "someone/drcnet-tiny", model.save_pretrained(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))     # HF_HOME=tmp and HF_HUB_OFFLINE=1, as read
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)          # when huggingface_hub was imported
    again = DRCNet.from_pretrained("someone/drcnet-tiny")
    assert same_weights(model, again) and again.checkpoint_metadata["weights"] == "ema"
    with pytest.raises(FileNotFoundError, match="someone/not-cached"):
        DRCNet.from_pretrained("someone/not-cached")


def test_push_to_hub_uploads_weights_config_and_the_given_card(tiny_checkpoint, tmp_path, monkeypatch):
    model, _ = load_checkpoint(tiny_checkpoint)
    pushed = {}

    def create_repo(self, repo_id, **options):
        pushed["created"] = repo_id

    def upload_folder(self, *, repo_id, folder_path, **options):
        pushed["files"] = {p.name: p.read_bytes() for p in sorted(Path(folder_path).iterdir())}
        pushed["repo"] = repo_id
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    card = "---\nlicense: mit\n---\n# my own card\n"
    model.push_to_hub("someone/drcnet-tiny", card=card)
    assert pushed["created"] == pushed["repo"] == "someone/drcnet-tiny"
    assert sorted(pushed["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert pushed["files"]["README.md"].decode() == card                # the hand-written card is not replaced
    (tmp_path / "pushed.safetensors").write_bytes(pushed["files"]["model.safetensors"])
    assert same_weights(model, load_checkpoint(tmp_path / "pushed.safetensors")[0])


def test_export_hub_of_the_shipped_checkpoint_restores_bit_for_bit_like_it(tmp_path, capsys):
    assert main(["export-hub", "denoise", str(tmp_path / "export")]) == 0
    folder = tmp_path / "export"
    shipped = checkpoint_file(SHIPPED, "denoise")
    assert (folder / "model.safetensors").stat().st_size < 1.01 * shipped.stat().st_size    # fp16, as shipped
    image = np.random.default_rng(0).random((96, 80, 3), dtype=np.float32)
    options = dict(device="cpu", precision="fp32")
    reference = Restorer.from_checkpoint(shipped, **options).restore(image)
    model = DRCNet.from_pretrained(folder)
    exported = Restorer(model, meta=model.checkpoint_metadata, **options).restore(image)
    assert np.array_equal(reference, exported)
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "drcnet-explorer" and card.data.pipeline_tag == "image-to-image"
    shipped_front, _ = split_front_matter(checkpoint_file(SHIPPED, "denoise", "card").read_text())
    assert split_front_matter((folder / "README.md").read_text())[0] == shipped_front


@pytest.mark.parametrize("task", TASKS)
def test_each_shipped_card_opens_with_the_model_index_of_its_test_json(task):
    card = checkpoint_file(SHIPPED, task, "card")
    assert card.read_text().startswith("---\n")
    test = json.loads(checkpoint_file(SHIPPED, task, "test").read_text())
    data = ModelCard.load(card).data
    assert data.license == "mit" and "image-restoration" in data.tags
    found = {(r.dataset_config, r.metric_type): r.metric_value for r in data.eval_results}
    expected = {(s, m): test["mean"][s]["drcnet"][m] for s in test["settings"] for m in ("psnr", "ssim")}
    assert found.keys() == expected.keys()
    assert all(abs(found[k] - expected[k]) < 0.006 for k in expected)
    assert all(r.verified is False for r in data.eval_results)           # self-reported


def test_the_release_rewrites_the_front_matter_from_the_json_and_keeps_the_body(tmp_path):
    for suffix in ("card", "test"):
        source = checkpoint_file(SHIPPED, "derain", suffix)
        checkpoint_file(tmp_path, "derain", suffix).write_bytes(source.read_bytes())
    test = json.loads(checkpoint_file(tmp_path, "derain", "test").read_text())
    test["mean"]["heavy"]["drcnet"]["psnr"] = 31.234
    checkpoint_file(tmp_path, "derain", "test").write_text(json.dumps(test))
    card = refresh_front_matter("derain", tmp_path)
    heavy = [r for r in ModelCard.load(card).data.eval_results if r.dataset_config == "heavy" and r.metric_type == "psnr"]
    assert [r.metric_value for r in heavy] == [31.23] and heavy[0].metric_name == "PSNR (Y)"
    body = split_front_matter(checkpoint_file(SHIPPED, "derain", "card").read_text())[1]
    assert split_front_matter(card.read_text())[1] == body
