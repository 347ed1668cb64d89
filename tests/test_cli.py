import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drcnet import create_model, save_checkpoint
from drcnet.serve.cli import main
from drcnet.serve.imageio import write_png16

REPO = Path(__file__).resolve().parent.parent


def drcnet(*args, cwd, **env):
    """`python -m drcnet ...` in a fresh interpreter: the entry point, its exit code and its stderr as a user sees
    them. Each launch pays ~2 s of imports, so only the end-to-end test uses it; the others call cli.main."""
    return subprocess.run([sys.executable, "-m", "drcnet", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                                        **env}, timeout=300)


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli.main(args) in this process, run from `cwd` with extra environment: (exit code, stdout, stderr).
    argparse's usage errors arrive as SystemExit, as they would end the process."""
    def run(*args, cwd, **env):
        monkeypatch.chdir(cwd)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return run


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return save_checkpoint(path, create_model("tiny"), task="denoise", preset="tiny",
                           training={"iterations": 3}, metrics={"psnr": 12.5})


def test_restore_writes_pngs_keeps_16bit_and_alpha_and_reports_failures(tmp_path, tiny_checkpoint):
    rgba = np.random.default_rng(0).integers(0, 256, (40, 50, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    write_png16(tmp_path / "b16.png", np.full((30, 20, 3), 40000, np.uint16))
    (tmp_path / "broken.jpg").write_text("not an image")
    out = tmp_path / "out"
    r = drcnet("restore", tmp_path / "a.png", tmp_path / "broken.jpg", tmp_path / "b16.png",
               "--checkpoint", tiny_checkpoint, "--out", out, "--tile", "32", "--overlap", "8",
               "--precision", "fp32", "--t", "0.6", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: broken.jpg: not an image file, or a format this app cannot read"]
    assert "Traceback" not in r.stderr
    a = Image.open(out / "a.png")
    assert a.mode == "RGBA" and a.size == (50, 40)
    assert np.array_equal(np.asarray(a)[..., 3], rgba[..., 3])
    b = out / "b16.png"
    assert b.read_bytes()[24] == 16                         # IHDR bit depth: still 16-bit
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b16.png"]


def test_all_inputs_fine_exits_0(tmp_path, tiny_checkpoint, cli):
    Image.fromarray(np.full((16, 16), 128, np.uint8), mode="L").save(tmp_path / "g.png")
    r = cli("restore", "g.png", "--checkpoint", tiny_checkpoint, "--out", "o", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "o" / "g.png").mode == "L"


def test_unusable_checkpoint_exits_2(tmp_path, cli):
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "bad.safetensors").write_text("junk")
    r = cli("restore", "x.png", "--checkpoint", "bad.safetensors", "--out", "o", cwd=tmp_path)
    assert r.returncode == 2 and "bad.safetensors: not a readable safetensors file" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_task_checkpoint_says_so(tmp_path, cli, monkeypatch):
    from drcnet.core import paths

    empty = tmp_path / "no-checkpoints"
    empty.mkdir()
    monkeypatch.setattr(paths, "in_clone", lambda: False)       # no clone and an empty package: nowhere to fall
    monkeypatch.setattr(paths, "WHEEL_WEIGHTS", empty)          # back to (tests/test_resolver.py has the order)
    r = cli("restore", "x.png", "--task", "deblur", "--out", "o", cwd=tmp_path, DRCNET_CHECKPOINTS=str(empty))
    assert r.returncode == 2
    assert "no trained checkpoint for task 'deblur'" in r.stderr and "deblur.safetensors" in r.stderr


def test_usage_errors_exit_2(tmp_path, cli):
    # Each case names its own problem: exit code 2 alone is also what an unusable checkpoint gives, so a missing
    # --task/--checkpoint that fell through to loading "None.safetensors" would pass on the code alone.
    r = cli("restore", "x.png", "--task", "denoise", cwd=tmp_path)                        # no --out
    assert r.returncode == 2 and "the following arguments are required: --out" in r.stderr
    r = cli("restore", "x.png", "--out", "o", cwd=tmp_path)                               # no model
    assert r.returncode == 2 and "one of the arguments --task --checkpoint is required" in r.stderr
    r = cli("restore", "x.png", "--task", "denoise", "--out", "o", "--tile", "32", "--overlap", "20", cwd=tmp_path)
    assert r.returncode == 2 and "error: --overlap (20) must be at most half of --tile (32)" in r.stderr
    assert not (tmp_path / "o").exists()                                                  # nothing was written


def test_info_prints_metadata(tmp_path, tiny_checkpoint, cli):
    r = cli("info", tiny_checkpoint, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "task:       denoise" in r.stdout and "preset:     tiny" in r.stdout
    n = sum(p.numel() for p in create_model("tiny").parameters())
    assert f"parameters: {n:,}" in r.stdout
    assert '"psnr": 12.5' in r.stdout and '"iterations": 3' in r.stdout and '"wf": 16' in r.stdout
    bad = cli("info", tmp_path / "none.safetensors", cwd=tmp_path)
    assert bad.returncode == 2 and "none.safetensors: no such checkpoint file" in bad.stderr
