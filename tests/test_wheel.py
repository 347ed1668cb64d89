"""The package as `pip install <repo>` gives it: a wheel built from the sources (not an editable install),
installed into a fresh virtual environment and run from a folder outside the repository, with nothing in the
environment pointing back at the clone. The environment borrows this one's installed dependencies (torch & co.)
through a .pth line, which adds their folder without running its .pth files: the editable drcnet stays out."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from drcnet.core.metrics import psnr
from drcnet.core.tasks import TASKS
from drcnet.serve.imageio import load_image

REPO = Path(__file__).resolve().parent.parent
BUILD_INPUTS = ("pyproject.toml", "drcnet", "checkpoints")      # all that pyproject.toml builds the wheel from
NOISY, CLEAN = REPO / "assets" / "astronaut_denoise.png", REPO / "assets" / "astronaut_clean.png"   # sigma 25

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, the fresh environment's bin/, a working folder outside the repository, its environment)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"          # built from a copy: the build's own build/ and egg-info stay out of the clone
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(root / "dist"), str(source)], check=True, capture_output=True, text=True)
    wheel = next((root / "dist").glob("drcnet_explorer-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    Path(site, "_dependencies.pth").write_text("\n".join(ours) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True)
    work = root / "elsewhere"
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(root), "OMP_NUM_THREADS": "1",
           "HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1", "DRCNET_COMPILE": "0"}   # no PYTHONPATH, no DRCNET_*
    return wheel, venv / "bin", work, env


def run(installed, *command):
    _, bin_, work, env = installed
    return subprocess.run([str(bin_ / command[0]), *map(str, command[1:])], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_wheel_holds_every_subpackage_the_recipes_the_weights_and_the_command(installed):
    names = set(zipfile.ZipFile(installed[0]).namelist())
    packages = {str(p.relative_to(REPO)) for p in (REPO / "drcnet").rglob("__init__.py")}
    assert packages <= names
    assert {str(p.relative_to(REPO)) for p in (REPO / "drcnet" / "recipes").glob("*.toml")} <= names
    for task in TASKS:
        assert {f"drcnet/weights/{task}{s}" for s in (".safetensors", ".md", ".test.json")} <= names
    assert "drcnet/weights/vgg19_relu3_1.safetensors" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "drcnet = drcnet.serve.cli:main" in zipfile.ZipFile(installed[0]).read(entry_points).decode()


def test_drcnet_restore_from_outside_the_repository_uses_the_weights_in_the_wheel(installed):
    work = installed[2]
    shutil.copy(NOISY, work / "noisy.png")
    r = run(installed, "drcnet", "restore", "--task", "denoise", "noisy.png", "--out", "restored")
    assert r.returncode == 0, r.stderr
    used = next(line for line in r.stderr.splitlines() if line.startswith("checkpoint: "))
    assert "site-packages/drcnet/weights/denoise.safetensors" in used and str(REPO) not in used
    clean = load_image(CLEAN).rgb
    restored = load_image(work / "restored" / "noisy.png").rgb
    assert restored.shape == clean.shape
    assert psnr(restored, clean) > psnr(load_image(NOISY).rgb, clean) + 3      # it restored, not copied


def test_drcnet_info_without_an_argument_lists_the_installed_checkpoints(installed):
    r = run(installed, "drcnet", "info")
    assert r.returncode == 0, r.stderr
    for task in TASKS:
        assert f"drcnet/weights/{task}.safetensors" in r.stdout
    assert "the repository's checkpoints/" not in r.stdout and str(REPO) not in r.stdout


def test_an_exported_folder_loads_by_path_and_as_a_hub_id_from_the_cache(installed):
    work, env = installed[2], installed[3]
    assert run(installed, "drcnet", "export-hub", "derain", "exported").returncode == 0
    commit = "0" * 40                   # huggingface_hub's cache layout, as a download leaves it
    repo = Path(env["HF_HOME"]) / "hub" / "models--someone--drcnet-derain"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(work / "exported", repo / "snapshots" / commit)
    script = ("import json, drcnet; from drcnet import DRCNet\n"
              "for source in ('exported', 'someone/drcnet-derain'):\n"
              "    model = DRCNet.from_pretrained(source)\n"
              "    print(json.dumps({'module': drcnet.__file__, 'sum': sum(float(p.double().sum()) "
              "for p in model.state_dict().values())}))\n")
    r = run(installed, "python", "-c", script)
    assert r.returncode == 0, r.stderr
    shipped = load_file(str(REPO / "checkpoints" / "derain.safetensors"))
    expected = sum(float(t.float().double().sum()) for t in shipped.values())
    loaded = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(loaded) == 2 and all(str(REPO) not in x["module"] for x in loaded)
    assert all(np.isclose(x["sum"], expected, rtol=0, atol=1e-6) for x in loaded)
