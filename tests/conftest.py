"""Shared test settings and the device layer.

`device` is the one place the model, engine, probe and checkpoint tests get their device from: the CPU always,
CUDA as a second parameter when a GPU is present. `deterministic` switches CUDA to deterministic kernels (no
cudnn.benchmark, no TF32) for tests that compare two runs; on the CPU it changes nothing that matters."""
import os

import pytest
import torch

# cuBLAS needs this before its first handle to be deterministic (torch.use_deterministic_algorithms).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

# The tests run small tensors: one thread is as fast as two for them, and it keeps them from slowing down
# tenfold when other processes (a training run, a second test session) compete for the CPU cores.
torch.set_num_threads(1)

# The app compiles its whole-image graphs in a background thread at start-up (DRCNET_COMPILE=auto). Tests that
# launch the app or build restorers would pay minutes of compiling beside what they measure; the compiled path
# has its own tests (tests/test_compiled.py), which ask for it explicitly.
os.environ.setdefault("DRCNET_COMPILE", "0")

# Debian's chromium as the browser tests drive it (Playwright's own browser downloads are not used).
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


def tiny_checkpoints(folder, tasks=("denoise", "derain", "deblur"), ablation: bool = False):
    """Randomly initialised tiny-preset task checkpoints in `folder` (seed 0), for the app's tests: the app
    serves whatever it finds there (DRCNET_CHECKPOINTS). ablation: also a `denoise-l1` for the Compare tab."""
    import drcnet
    from drcnet.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    for task in tasks:
        save_checkpoint(folder / f"{task}.safetensors", drcnet.create_model("tiny"), task=task, preset="tiny")
    if ablation:
        save_checkpoint(folder / "denoise-l1.safetensors", drcnet.create_model("tiny"), task="denoise", preset="tiny")
    return folder


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session", params=DEVICES)
def device(request) -> torch.device:
    """The device under test: 'cpu', and 'cuda' when a GPU is present."""
    return torch.device(request.param)


@pytest.fixture(scope="module")
def reg():
    """The demo's registry, as app.py makes it once: checkpoints from $DRCNET_CHECKPOINTS at each call."""
    from drcnet.demo import Registry
    return Registry()


@pytest.fixture
def deterministic():
    """Deterministic algorithms on, cudnn.benchmark and TF32 off, for the duration of one test."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.use_deterministic_algorithms(saved[0])
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.allow_tf32) = saved[1:]


def close_tolerance(device: torch.device) -> float:
    """Absolute tolerance for 'the same computation twice' on float32 images in [0, 1]: the CPU repeats its
    arithmetic (1e-6 leaves room for threading order); CUDA kernels may reorder sums (a few float32 ulps of
    the O(1) activations, accumulated over the network's ~40 layers)."""
    return 1e-6 if device.type == "cpu" else 1e-4


@pytest.fixture
def checkpoints_of_module(reg, ckdir, monkeypatch):
    """DRCNET_CHECKPOINTS set to the module's own `ckdir` fixture for one test; the shared registry forgets its
    models afterwards. A module opts in with `pytestmark = pytest.mark.usefixtures("checkpoints_of_module")`."""
    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(ckdir))
    yield
    reg.clear()
