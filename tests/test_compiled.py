"""drcnet.serve.compiled through the Restorer: size buckets (pad and crop), when the eager model must run, fallbacks.

Most tests replace torch.compile by the identity (`no_inductor`): the "compiled" graph is then the engine's
private copy of the model run eagerly, so the bucket padding and cropping are checked exactly and in
milliseconds. One slow test compiles for real (inductor) on a shipped checkpoint."""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import drcnet.serve.compiled
from drcnet import create_model
from drcnet.serve.compiled import bucket_shape
from drcnet.serve.engine import Restorer
from drcnet.core.metrics import psnr
from drcnet.model.probes import FeatureProbe

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


@pytest.fixture
def no_inductor(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)


def image(h, w, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (h, w, 3)).astype(np.float32)


def noisy_gradient(h, w, sigma=0.1):
    """A horizontal grey ramp with Gaussian noise: something the denoise checkpoint has work to do on."""
    ramp = np.linspace(0.2, 0.8, w, dtype=np.float32)[None, :, None]
    return np.clip(ramp + np.random.default_rng(3).normal(0, sigma, (h, w, 3)), 0, 1).astype(np.float32)


def restorers(**kw):
    """A compiling and an eager-only Restorer with the same random tiny weights (fp32: exact comparisons)."""
    torch.manual_seed(0)
    model = create_model("tiny")
    eager = create_model("tiny")
    eager.load_state_dict(model.state_dict())
    return (Restorer(model, device="cpu", precision="fp32", compile=True, **kw),
            Restorer(eager, device="cpu", precision="fp32"))


def test_buckets():
    assert bucket_shape(1, 128) == (128, 128)
    assert bucket_shape(129, 300) == (256, 384)
    assert bucket_shape(512, 500) == (512, 512)


def test_bucket_path_reflect_pads_bottom_right_and_crops_back_exactly(no_inductor):
    compiled, eager = restorers()
    compiled.warm_up([(200, 180)], wait=True)             # the 256 x 256 bucket
    x = image(200, 180)
    out = compiled.restore(x, tile=0)
    assert compiled.last_stats["compiled"] == 1
    # what the bucket path must compute: the model on the input reflect-padded to 256 x 256, top-left crop
    padded = F.pad(torch.from_numpy(x).permute(2, 0, 1)[None], (0, 256 - 180, 0, 256 - 200), mode="reflect")
    with torch.inference_mode():
        expected = eager.model(padded)[1][0, :, :200, :180].permute(1, 2, 0).clamp(0, 1).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # the padding is real work, not a no-op: the whole-image statistics see the reflected border too
    assert np.abs(out - eager.restore(x, tile=0)).max() > 1e-4
    # an input the size of its bucket is not padded: identical to the eager engine
    y = image(256, 256, seed=1)
    np.testing.assert_array_equal(compiled.restore(y, tile=0), eager.restore(y, tile=0))


def test_tiles_go_through_the_bucket_of_the_tile_size_and_small_inputs_stay_eager(no_inductor):
    compiled, eager = restorers()
    compiled.warm_up([(128, 128)], wait=True)
    x = image(200, 230)
    out = compiled.restore(x, tile=128, overlap=16)
    assert compiled.last_stats["compiled"] == compiled.last_stats["tiles"] == 4
    np.testing.assert_allclose(out, eager.restore(x, tile=128, overlap=16), atol=1e-5)   # tiles fill the bucket
    compiled.restore(image(60, 128), tile=0)         # fills under half of its 128 x 128 bucket: eager
    assert compiled.last_stats["compiled"] == 0
    compiled.restore(image(600, 600), tile=0)        # larger than the biggest bucket (512): eager
    assert compiled.last_stats["compiled"] == 0


def test_threshold_changes_and_feature_probes_run_the_eager_model(no_inductor):
    compiled, eager = restorers()
    compiled.warm_up([(128, 128)], wait=True)
    x = image(128, 128)
    compiled.set_threshold(0.3)
    eager.set_threshold(0.3)
    np.testing.assert_array_equal(compiled.restore(x), eager.restore(x))
    assert compiled.last_stats["compiled"] == 0
    compiled.set_threshold(compiled.graphs.t)
    with FeatureProbe(compiled.model) as probe:
        compiled.restore(x)
        assert probe.maps and compiled.last_stats["compiled"] == 0    # the hooks fired: the eager model ran
    compiled.restore(x)
    assert compiled.last_stats["compiled"] == 1


def test_a_compile_failure_falls_back_to_eager_with_one_log_line(monkeypatch, caplog):
    def broken(model, **kw):
        raise RuntimeError("inductor exploded\nwith a long traceback")

    monkeypatch.setattr(torch, "compile", broken)
    drcnet.serve.compiled.reset_warnings()      # once per process: forget earlier tests' lines
    compiled, eager = restorers()
    x = image(128, 128)
    with caplog.at_level(logging.INFO, logger="drcnet.serve.compiled"):
        compiled.warm_up([(128, 128), (256, 256)], wait=True)
        for _ in range(2):
            np.testing.assert_array_equal(compiled.restore(x), eager.restore(x))
            assert compiled.last_stats["compiled"] == 0
    assert [r.getMessage() for r in caplog.records] == [
        "torch.compile failed, serving the eager model: RuntimeError: inductor exploded"]


def test_auto_without_a_cpp_compiler_stays_eager_with_one_log_line(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))                # an empty folder: no g++
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(torch, "compile", lambda *a, **kw: pytest.fail("auto must not try to compile"))
    drcnet.serve.compiled.reset_warnings()
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="drcnet.serve.compiled"):
        restorer = Restorer(create_model("tiny"), device="cpu", precision="fp32", compile="auto")
        restorer.warm_up([(128, 128)], wait=True)
        restorer.restore(image(128, 128))
    assert restorer.last_stats["compiled"] == 0
    assert len(caplog.records) == 1 and "no C++ compiler" in caplog.records[0].getMessage()


@pytest.mark.skipif(not (CHECKPOINTS / "denoise.safetensors").is_file(), reason="no shipped checkpoint")
def test_padding_to_a_bucket_costs_little_on_the_shipped_checkpoint(no_inductor):
    """With the paper's whole-image statistics the bucket padding changes them: measured 44 dB at 200 x 180
    (bucket 256 x 256, 55 % filled) against the unpadded eager result, bf16; at least 40 dB is asserted. With the
    engine's default (tiles of the 128 px training patch) every tile fills its bucket: nothing is padded, and
    compiled and eager agree exactly here (no_inductor: the same arithmetic)."""
    path = CHECKPOINTS / "denoise.safetensors"
    noisy = noisy_gradient(200, 180)
    compiled = Restorer.from_checkpoint(path, device="cpu", compile=True, statistics="whole")
    eager = Restorer.from_checkpoint(path, device="cpu", statistics="whole")
    compiled.warm_up([(256, 256)], wait=True)
    out = compiled.restore(noisy, tile=0)
    assert compiled.last_stats["compiled"] == 1
    assert psnr(out, eager.restore(noisy, tile=0)) >= 40
    compiled = Restorer.from_checkpoint(path, device="cpu", compile=True)
    eager = Restorer.from_checkpoint(path, device="cpu")
    compiled.warm_up([(200, 180)], wait=True)            # queues the 128 x 128 tile's graph
    out = compiled.restore(noisy, tile=0)
    assert compiled.last_stats["compiled"] == compiled.last_stats["tiles"] == 4
    assert psnr(out, eager.restore(noisy, tile=0)) >= 60


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not (CHECKPOINTS / "denoise.safetensors").is_file(), reason="no shipped checkpoint")
@pytest.mark.xfail(reason="torch 2.14.1 inductor: the 128 x 128 bf16 graph returns NaN on this CPU (found "
                          "2026-12-06, also with earlier checkpoints); the engine falls back to eager "
                          "(test_a_non_finite_compiled_output_falls_back_to_eager)", strict=False)
def test_inductor_output_is_within_50_db_of_eager_on_the_shipped_checkpoint():
    """A real compile (inductor, a few minutes cold on 2 shared cores; seconds with .cache/inductor warm).
    Measured 56.7 dB here (53.3 dB on a noisy 512 x 512 photo)."""
    path = CHECKPOINTS / "denoise.safetensors"
    compiled = Restorer.from_checkpoint(path, device="cpu", compile=True)
    eager = Restorer.from_checkpoint(path, device="cpu")
    compiled.warm_up([(128, 128)], wait=True)
    assert compiled.graphs.failed is None
    noisy = noisy_gradient(128, 128)
    out = compiled.restore(noisy)
    assert compiled.last_stats["compiled"] == 1
    assert psnr(out, eager.restore(noisy)) >= 50


@pytest.mark.skipif(not (CHECKPOINTS / "denoise.safetensors").is_file(), reason="no shipped checkpoint")
def test_the_app_start_up_hook_queues_the_graph_of_the_training_tile(no_inductor, monkeypatch):
    from drcnet import demo

    monkeypatch.setenv("DRCNET_CHECKPOINTS", str(CHECKPOINTS))
    monkeypatch.setenv("DRCNET_COMPILE", "on")
    registry = demo.Registry()
    try:
        registry.warm_up(tasks=("denoise",)).join()       # one task keeps it quick; the app passes all
        drcnet.serve.compiled.wait_for_compiles()
        graphs = registry.model_for("denoise").graphs
        assert graphs is not None and graphs.ready((128, 128))     # "matched": 128 px tiles
    finally:
        registry.clear()


def test_a_non_finite_compiled_output_falls_back_to_eager(no_inductor):
    """A graph that returns NaN is treated as a failed compile: the request is served eagerly, and so is every
    later one (the 128 px graph of torch 2.14.1 does this on the development CPU)."""
    model = drcnet.create_model("tiny").eval()
    r = Restorer(model, device="cpu", precision="fp32", compile=True, meta={"training": {"patch": 128}})
    r.warm_up([(128, 128)], wait=True)
    graph = r.graphs.graph_for(r.model, 128, 128)
    assert graph is not None
    r.graphs._compiled = lambda x: tuple(torch.full_like(o, float("nan")) for o in model(x))
    image = np.random.default_rng(0).random((128, 128, 3)).astype(np.float32)
    out = r.restore(image)
    assert np.isfinite(out).all() and r.last_stats["compiled"] == 0
    assert "non-finite" in r.graphs.failed and r.graphs.graph_for(r.model, 128, 128) is None
