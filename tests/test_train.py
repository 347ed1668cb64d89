"""drcnet.train: loss goes down, checkpoints load, resume is exact, DDP (two gloo processes on the CPU) works.

Everything runs the tiny preset on 32 px patches, so the whole file takes well under a minute on 2 cores."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from drcnet.checkpoint import load_checkpoint, read_metadata
from drcnet.train import IterationBatches, TrainConfig, _parser, train

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Six small smooth 'photos' (gradients and blobs): a denoiser can learn them in a few steps."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128] / 96.0
    for n in range(6):
        img = np.stack([0.5 + 0.4 * np.sin(xx * rng.uniform(1, 4) + rng.uniform(0, 6)) * np.cos(yy * rng.uniform(1, 4))
                        for _ in range(3)], axis=-1)
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(folder / f"photo{n}.png")
    return folder


def tiny(photos, out, **kw) -> TrainConfig:
    base = dict(task="denoise", preset="tiny", data=str(photos), iters=20, batch=4, patch=32, lr=1e-3, loss="l1",
                val_data=str(photos), out=str(out), log_every=5, val_every=10, save_every=10, val_count=2, val_size=32,
                precision="fp32", threads=1, workers=0, progress=False, seed=0)
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------------------------------------------------------

def test_batches_are_a_pure_function_of_the_iteration():
    full = list(IterationBatches(0, 6, batch=4))
    assert full[3] == [12, 13, 14, 15]
    assert list(IterationBatches(3, 6, batch=4)) == full[3:]                       # resume needs no sampler state
    ranks = [list(IterationBatches(2, 3, batch=4, rank=r, world=2)) for r in range(2)]
    assert ranks[0][0] + ranks[1][0] == full[2]                                    # DDP ranks split the global batch


def test_cli_parses_into_config():
    args = _parser().parse_args(["--task", "derain", "--preset", "lite", "--iters", "7", "--lr-min", "1e-6",
                                 "--no-augment", "--max-side", "512", "--loss", "aecr"])
    cfg = TrainConfig(**vars(args))
    assert (cfg.task, cfg.preset, cfg.iters, cfg.lr_min, cfg.augment, cfg.max_side, cfg.loss) == \
        ("derain", "lite", 7, 1e-6, False, 512, "aecr")
    assert (cfg.lr, cfg.batch, cfg.patch, cfg.clip, cfg.alpha) == (2e-4, 32, 256, 0.0, 0.04)   # paper defaults
    assert cfg.out == str(Path("runs") / "derain-lite")
    with pytest.raises(ValueError):
        TrainConfig(loss="mse")


def test_l1_training_lowers_the_loss_and_writes_checkpoints(photos, tmp_path):
    out = tmp_path / "run"
    result = train(tiny(photos, out))
    losses = [h["loss"] for h in result["history"]]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    assert result["iterations"] == 20

    for name in ("last.safetensors", "best.safetensors", "state.pt", "log.jsonl", "config.json"):
        assert (out / name).exists(), name
    model, meta = load_checkpoint(out / "last.safetensors")
    training = meta["training"]
    assert (meta["task"], meta["preset"], training["iterations"], training["batch"], training["patch"]) == \
        ("denoise", "tiny", 20, 4, 32)
    for key in ("loss", "alpha", "lr", "data", "hardware", "wall_time_s", "command", "val_psnr"):
        assert key in training, key
    assert training["val_psnr"] == pytest.approx(meta["metrics"]["val_psnr"])
    with torch.no_grad():
        out1, out2 = model(torch.rand(1, 3, 20, 28))
    assert out2.shape == (1, 3, 20, 28) and torch.isfinite(out2).all()

    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    train_lines = [line for line in lines if "loss" in line]
    assert [line["iter"] for line in train_lines] == [5, 10, 15, 20]
    assert all({"psnr", "lr", "images_per_s"} <= set(line) for line in train_lines)
    assert [line["iter"] for line in lines if "val_psnr" in line] == [10, 20]
    assert train_lines[-1]["lr"] == pytest.approx(1e-7)                          # cosine reached its floor

    with pytest.raises(FileExistsError):                                       # no silent overwrite
        train(tiny(photos, out))


def test_intra_cr_loss_runs(photos, tmp_path):
    result = train(tiny(photos, tmp_path / "cr", loss="intra-cr", iters=3, log_every=1, val_every=0,
                        precision="auto"))
    assert result["iterations"] == 3
    assert all(np.isfinite(h["loss"]) for h in result["history"])
    assert read_metadata(tmp_path / "cr" / "last.safetensors")["training"]["loss"] == "intra-cr"


def test_resume_matches_training_straight_through(photos, tmp_path):
    kw = dict(iters=10, save_every=3, val_every=4, log_every=1)
    straight = train(tiny(photos, tmp_path / "a", **kw))
    first = train(tiny(photos, tmp_path / "b", stop_at=5, **kw))
    assert first["iterations"] == 5
    resumed = train(tiny(photos, tmp_path / "b", resume=True, **kw))
    assert resumed["start_iter"] == 5 and resumed["iterations"] == 10

    a = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    # tolerance: fp32 on the CPU repeats its arithmetic exactly; 1e-6 leaves room for threading order
    diff = max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"])
    assert diff < 1e-6, diff
    exp_a = a["optimizer"]["state"][0]["exp_avg_sq"]
    assert torch.allclose(exp_a, b["optimizer"]["state"][0]["exp_avg_sq"], rtol=0, atol=1e-9)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 10
    assert [h["loss"] for h in straight["history"]][5:] == pytest.approx([h["loss"] for h in resumed["history"]],
                                                                         abs=1e-5)
    # the resumed log has each iteration once
    iters = [json.loads(x)["iter"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()
             if "loss" in json.loads(x)]
    assert iters == list(range(1, 11))


def test_kill_9_mid_run_loses_only_the_steps_since_the_last_save(photos, tmp_path):
    """SIGKILL a command-line run at a random moment; the state on disk is whole and a --resume continues."""
    out = tmp_path / "k"
    args = ["--task", "denoise", "--preset", "tiny", "--data", str(photos), "--val-data", str(photos),
            "--iters", "1000", "--batch", "2", "--patch", "32", "--loss", "l1", "--out", str(out),
            "--save-every", "2", "--log-every", "1", "--val-every", "0", "--val-count", "1", "--val-size", "32",
            "--precision", "fp32", "--threads", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "drcnet.train", *args], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if (out / "state.pt").exists() and torch.load(out / "state.pt", weights_only=True)["iter"] >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    state = torch.load(out / "state.pt", weights_only=True)
    saved = state["iter"]
    assert saved >= 4 and saved % 2 == 0 and {"torch", "python", "numpy"} <= set(state["rng"])
    load_checkpoint(out / "last.safetensors")                                   # whole, loadable
    resumed = train(tiny(photos, out, iters=1000, batch=2, save_every=2, log_every=1, val_every=0, val_count=1,
                         resume=True, stop_at=saved + 2))
    assert resumed["start_iter"] == saved and resumed["iterations"] == saved + 2
    assert not list(out.glob("*.tmp"))                                          # leftovers of the kill removed
    iters = [json.loads(x)["iter"] for x in (out / "log.jsonl").read_text().splitlines() if "loss" in x]
    assert iters == list(range(1, saved + 3))                                   # killed steps logged once


def test_ddp_two_gloo_processes_on_cpu(photos, tmp_path):
    out = tmp_path / "ddp"
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent("""
        import sys
        from drcnet.train import main
        main(sys.argv[1:])
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver),
           "--task", "denoise", "--preset", "tiny", "--data", str(photos), "--val-data", str(photos), "--iters", "4", "--batch", "4",
           "--patch", "32", "--loss", "l1", "--out", str(out), "--log-every", "2", "--val-every", "0",
           "--val-count", "2", "--val-size", "32", "--precision", "fp32", "--threads", "1", "--workers", "0",
           "--no-progress", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    meta = read_metadata(out / "last.safetensors")
    assert meta["training"]["world_size"] == 2 and meta["training"]["iterations"] == 4
    model, _ = load_checkpoint(out / "last.safetensors")
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["iter"] for x in lines if "loss" in x] == [2, 4]                   # rank 0 alone wrote the log
