"""drcnet.model.checkpoint: round trips (on the `device` fixture), every kind of bad file, and the shipped files."""
import json
from pathlib import Path

import pytest
import torch

from drcnet import create_model
from drcnet.model.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("tiny", t=0.7).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, task="denoise", preset="tiny",
                           training={"iterations": 10}, metrics={"psnr": 30.5})
    return model, path


def test_round_trip_preserves_outputs_and_metadata(saved, device, deterministic):
    model, path = saved
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    model, loaded = model.to(device), loaded.to(device)
    x = torch.rand(1, 3, 32, 40, device=device)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)
    assert meta["task"] == "denoise" and meta["preset"] == "tiny"
    assert meta["config"] == model.cfg.to_dict() and loaded.cfg.t == 0.7
    assert meta["training"] == {"iterations": 10} and meta["metrics"] == {"psnr": 30.5}
    assert read_metadata(path)["metrics"] == {"psnr": 30.5}


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: no such checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_non_safetensors_file(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes\.safetensors: not a readable safetensors file"):
        load_checkpoint(path)


def test_truncated_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: .*(corrupt|truncated|not a readable)"):
        load_checkpoint(cut)


def test_corrupt_header(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[8:40] = b"\xff" * 32            # garble the JSON header
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: not a readable safetensors file"):
        load_checkpoint(bad)


def test_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match=r"other\.safetensors: not a DRCNet checkpoint"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    small = create_model("tiny")
    path = save_checkpoint(tmp_path / "mismatch.safetensors", small, preset="tiny")
    # rewrite the metadata to claim a wider model than the tensors hold
    from safetensors.torch import load_file, save_file

    meta = read_metadata(path)
    raw = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in meta.items()}
    raw["config"] = json.dumps({**meta["config"], "wf": 32})
    save_file(load_file(str(path)), str(path), metadata=raw)
    with pytest.raises(CheckpointError, match=r"mismatch\.safetensors: weights do not fit the model: shape mismatch"):
        load_checkpoint(path)


def test_bad_config_in_metadata(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="bad config"):
        load_checkpoint(path, variant="no-such-variant")


def test_official_pth_errors_become_checkpoint_errors(tmp_path):
    path = tmp_path / "junk.pth"
    torch.save({"something": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"junk\.pth: not an official DRCNet state dict"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"junk\.pth: cannot load"):
        load_checkpoint(path)


@pytest.mark.parametrize("task", ["denoise", "derain", "deblur"])
def test_shipped_checkpoint_loads_and_restores_its_task(task, device):
    """checkpoints/<task>.safetensors through the public API: its metadata names the task, the weights come back
    as finite float32 and (denoise, derain) a degraded crop comes out closer to the clean one."""
    import numpy as np
    from skimage import data

    from drcnet.data.degrade import degrade
    from drcnet.serve.engine import Restorer
    from drcnet.core.metrics import psnr

    path = Path(__file__).resolve().parent.parent / "checkpoints" / f"{task}.safetensors"
    if not path.is_file():
        pytest.skip(f"{path.name} is not shipped in this checkout")
    model, meta = load_checkpoint(path)
    assert meta["task"] == task and meta["config"] == model.cfg.to_dict() and not model.training
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    clean = data.astronaut()[100:196, 180:276].astype(np.float32) / 255.0
    noisy, _ = degrade(clean, task, np.random.default_rng(0), **({"sigma": 25} if task == "denoise" else {}))
    noisy = np.clip(noisy, 0, 1).astype(np.float32)
    out = Restorer(model, device=device, precision="fp32").restore(noisy, tile=0)
    print(f"{task}: input {psnr(noisy, clean):.2f} dB -> restored {psnr(out, clean):.2f} dB")
    assert np.isfinite(out).all() and not np.allclose(out, noisy)
    if task != "deblur":      # deblur on a 96 px crop: no measurable gain (15.50 -> 15.38 dB); see its card
        assert psnr(out, clean) > psnr(noisy, clean) + 1.0
