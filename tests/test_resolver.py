"""drcnet.core.paths.find_weights, the one resolver of the CLI, the app and the API: an explicit path first, then
a task's checkpoint in $DRCNET_CHECKPOINTS, the clone's checkpoints/ and the installed package, then a Hub
repository id, which is the only thing that downloads; its error names every place it looked."""
import huggingface_hub
import pytest
import torch

from drcnet import create_model, save_checkpoint
from drcnet.core import paths
from drcnet.core.paths import WeightsNotFound, checkpoints_dir, find_weights, shipped_file
from drcnet.serve.cli import main


def tiny(path, task="denoise"):
    torch.manual_seed(0)
    return save_checkpoint(path, create_model("tiny"), task=task, preset="tiny")


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Three checkpoint folders standing in for $DRCNET_CHECKPOINTS, the clone's checkpoints/ and the wheel's
    drcnet/weights/, each with its own denoise checkpoint; and a Hub that fails the test if anything calls it."""
    folders = {name: tmp_path / name for name in ("env", "clone", "wheel")}
    for folder in folders.values():
        folder.mkdir()
        tiny(folder / "denoise.safetensors")
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(folders["env"]))
    monkeypatch.setattr(paths, "SHIPPED", folders["clone"])
    monkeypatch.setattr(paths, "WHEEL_WEIGHTS", folders["wheel"])
    monkeypatch.setattr(paths, "in_clone", lambda: True)

    def no_download(*args, **kwargs):
        raise AssertionError(f"the resolver reached for the Hub: {args} {kwargs}")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    return folders


def test_a_task_is_looked_up_in_env_then_clone_then_wheel(places, monkeypatch):
    assert find_weights("denoise") == places["env"] / "denoise.safetensors"
    assert checkpoints_dir() == places["env"]
    monkeypatch.delenv("DRCNET_CHECKPOINTS")
    assert find_weights("denoise") == places["clone"] / "denoise.safetensors"
    assert checkpoints_dir() == places["clone"]
    (places["clone"] / "denoise.safetensors").unlink()
    assert find_weights("denoise") == places["wheel"] / "denoise.safetensors"
    monkeypatch.setattr(paths, "in_clone", lambda: False)      # an installed wheel: no clone to look in
    assert checkpoints_dir() == places["wheel"]
    assert shipped_file("vgg19_relu3_1.safetensors") == places["wheel"] / "vgg19_relu3_1.safetensors"


def test_a_task_missing_from_the_env_folder_falls_through_to_the_next(places):
    tiny(places["clone"] / "deblur.safetensors", task="deblur")
    assert find_weights("deblur") == places["clone"] / "deblur.safetensors"


def test_an_explicit_path_comes_before_any_task_folder(places, tmp_path, monkeypatch):
    mine = tiny(tmp_path / "mine.safetensors")
    assert find_weights(mine) == mine
    monkeypatch.chdir(tmp_path)
    (tmp_path / "denoise").mkdir()                                  # a folder named like a task, right here
    tiny(tmp_path / "denoise" / "model.safetensors")
    assert find_weights("denoise").resolve() == tmp_path / "denoise" / "model.safetensors"


def test_a_folder_means_its_model_safetensors_and_says_so_when_it_has_none(tmp_path):
    (tmp_path / "hub").mkdir()
    with pytest.raises(WeightsNotFound, match="without model.safetensors"):
        find_weights(tmp_path / "hub")
    weights = tiny(tmp_path / "hub" / "model.safetensors")
    assert find_weights(tmp_path / "hub") == weights


def test_the_error_names_every_place_it_looked_and_never_downloads(places):
    for folder in places.values():
        (folder / "denoise.safetensors").unlink()
    with pytest.raises(WeightsNotFound) as error:
        find_weights("denoise")
    message = str(error.value)
    assert "no trained checkpoint for task 'denoise'" in message
    for label, folder in (("$DRCNET_CHECKPOINTS", "env"), ("checkpoints/", "clone"), ("installed package", "wheel")):
        assert label in message and str(places[folder] / "denoise.safetensors") in message
    assert message.index(str(places["env"])) < message.index(str(places["clone"])) < message.index(str(places["wheel"]))
    with pytest.raises(WeightsNotFound, match="no such checkpoint file"):
        find_weights("runs/missing.safetensors")                   # looks like owner/name, but it is a file name


def test_only_a_named_hub_id_downloads_and_into_huggingface_hubs_cache(places, tmp_path, monkeypatch):
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    weights = tiny(snapshot / "model.safetensors")
    calls = []

    def fake_snapshot_download(repo_id, **options):
        calls.append((repo_id, options))
        return str(snapshot)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    find_weights("denoise")
    assert calls == []
    assert find_weights("someone/drcnet-denoise", revision="v1") == weights
    assert calls[0][0] == "someone/drcnet-denoise" and calls[0][1]["revision"] == "v1"
    assert calls[0][1]["cache_dir"] is None                        # huggingface_hub's own cache, not ours


def test_a_hub_failure_is_a_weights_error_naming_the_repository(monkeypatch):
    def offline(repo_id, **options):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline and not in the cache")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(WeightsNotFound, match="someone/nothing: .*could not be fetched.*not in the cache"):
        find_weights("someone/nothing")


def run_cli(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, *capsys.readouterr()


def test_cli_info_without_an_argument_describes_what_restore_would_use(places, capsys, monkeypatch):
    monkeypatch.delenv("DRCNET_CHECKPOINTS")
    tiny(places["wheel"] / "derain.safetensors", task="derain")
    code, out, err = run_cli(capsys, "info")
    assert code == 0, err
    assert str(places["clone"] / "denoise.safetensors") in out       # the first place that has it
    assert str(places["wheel"] / "derain.safetensors") in out
    deblur = next(line for line in out.splitlines() if line.strip().startswith("deblur"))
    assert "none" in deblur and str(places["wheel"] / "deblur.safetensors") in deblur
    assert "Searched in this order" in out and str(places["clone"]) in out


def test_cli_restore_and_info_report_a_missing_task_with_every_place(places, capsys, tmp_path):
    for folder in places.values():
        (folder / "denoise.safetensors").unlink()
    code, out, err = run_cli(capsys, "restore", tmp_path / "x.png", "--task", "denoise", "--out", tmp_path / "o")
    assert code == 2 and "no trained checkpoint for task 'denoise'" in err
    assert all(str(folder) in err for folder in places.values())
    assert run_cli(capsys, "info")[0] == 2                           # nothing available at all
