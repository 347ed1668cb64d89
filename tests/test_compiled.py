"""drcnet.serve.compiled through the Restorer: one graph for a batch of tiles, trusted only after it agrees with
eager on real photos, and every way back to the eager model.

Most tests replace the compiler by the identity (`no_inductor`): the "compiled" graph is then the engine's
private copy of the model run eagerly, built in this process, so batching, filling, cropping and the package
cache are checked exactly and in milliseconds. The slow tier compiles for real (torch.export + AOTInductor, in
the child process the app uses) on the shipped checkpoints and their examples."""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import drcnet.serve.compiled
from drcnet import create_model
from drcnet.model.inference import InferenceSpec
from drcnet.model.probes import FeatureProbe
from drcnet.serve.compiled import agreement
from drcnet.serve.engine import Restorer
from drcnet.serve.tiling import tiles_for

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
SPEC = InferenceSpec("matched", tile=64, overlap=8, batch=4)


def fake_compiler(monkeypatch, tmp_path, graph_of=lambda model: model):
    """Replace the compiler: a "package" is a marker file, loading it gives graph_of(model); builds run in this
    process; the package cache is a fresh folder. Returns the list of models compiled."""
    graphs, built = {}, []

    def compile_package(model, example, package, threads):
        built.append(model)
        model.compiled_for_threads = threads
        graphs[package.name.split(".")[0]] = graph_of(model)
        package.write_bytes(b"a stand-in package")

    monkeypatch.setattr(drcnet.serve.compiled, "compile_package", compile_package)
    monkeypatch.setattr(drcnet.serve.compiled, "load_package",
                        lambda package, model: graphs[package.name.split(".")[0]])
    monkeypatch.setattr(drcnet.serve.compiled.TileGraph, "isolate", False)
    monkeypatch.setenv("DRCNET_CACHE", str(tmp_path / "cache"))
    return built


@pytest.fixture
def no_inductor(monkeypatch, tmp_path):
    return fake_compiler(monkeypatch, tmp_path)


def image(h, w, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (h, w, 3)).astype(np.float32)


def restorers(**kw):
    """A compiling and an eager-only Restorer with the same random tiny weights (fp32: exact comparisons)."""
    torch.manual_seed(0)
    model = create_model("tiny")
    eager = create_model("tiny")
    eager.load_state_dict(model.state_dict())
    return (Restorer(model, device="cpu", precision="fp32", compile=True, spec=SPEC, **kw),
            Restorer(eager, device="cpu", precision="fp32", spec=SPEC))


PHOTOS = [image(128, 128, seed=5)]          # stand-ins for the task's examples: at least one tile each


def test_tiles_run_in_full_batches_filled_with_copies_of_real_tiles(no_inductor):
    compiled, eager = restorers()
    compiled.warm_up(PHOTOS, wait=True)
    assert compiled.graph.state == "ready"
    seen = []
    forward = compiled.graph._forward
    compiled.graph._forward = lambda batch, t=None: (seen.append(batch.clone()), forward(batch, t))[1]
    x = image(64, 176)                                    # 1 x 3 tiles of 64 px: one batch of 4, one filled
    out = compiled.restore(x)
    assert compiled.last_stats["tiles"] == 3 and compiled.last_stats["compiled"] == 1
    batch, = seen
    assert batch.shape == (4, 3, 64, 64)
    assert torch.equal(batch[3], batch[0])                # the filler is a copy of a real tile, never zeros
    np.testing.assert_allclose(out, eager.restore(x), atol=1e-6)
    y = image(64 * 4 - 24, 64)                            # 4 tiles: exactly one batch, no filler
    np.testing.assert_allclose(compiled.restore(y), eager.restore(y), atol=1e-6)
    assert compiled.last_stats["compiled"] == 1


def test_a_batch_under_half_the_graph_and_a_whole_image_run_eagerly(no_inductor):
    compiled, eager = restorers()
    compiled.warm_up(PHOTOS, wait=True)
    compiled.restore(image(64, 64))                       # one tile of four: eager is faster
    assert compiled.last_stats["compiled"] == 0
    with compiled.using(statistics="whole"):              # the paper's statistics: one eager pass
        compiled.restore(image(100, 90), tile=0)
    assert compiled.last_stats["compiled"] == 0


def test_the_graph_serves_only_after_it_agrees_with_eager_on_the_photos(monkeypatch, tmp_path, caplog):
    """A graph that is finite but wrong (what inductor's bf16 graph did to the derain example) is caught by the
    check at build time: the task serves eagerly and says why; the next start remembers it without rebuilding."""
    def wrong(model):
        def forward(x):
            out1, out2 = model(x)
            return out1, out2 + 0.3 * (x[:, :, :, :] > 0.5)   # a blob where the photo is bright
        return forward

    built = fake_compiler(monkeypatch, tmp_path, graph_of=wrong)
    compiled, eager = restorers()
    with caplog.at_level(logging.WARNING, logger="drcnet.serve.compiled"):
        compiled.warm_up(PHOTOS, wait=True)
    assert compiled.graph.state == "off" and "disagrees with eager" in compiled.graph.reason
    assert "disagrees with eager" in compiled.describe_path()
    assert any("disagrees" in r.getMessage() for r in caplog.records)
    x = image(64, 64 * 4 - 24)
    np.testing.assert_array_equal(compiled.restore(x), eager.restore(x))
    assert compiled.last_stats["compiled"] == 0
    again, _ = restorers()
    again.warm_up(PHOTOS, wait=True)
    assert again.graph.state == "off" and "disagrees with eager" in again.graph.reason and len(built) == 1


def test_without_a_real_photo_to_check_against_the_graph_is_never_built(no_inductor):
    compiled, _ = restorers()
    compiled.warm_up([], wait=True)
    assert compiled.graph.state == "off" and "no photo" in compiled.graph.reason
    compiled.restore(image(64, 232))
    assert compiled.last_stats["compiled"] == 0


def test_a_non_finite_output_serves_that_request_eagerly_and_keeps_the_graph(no_inductor, caplog):
    compiled, eager = restorers()
    compiled.warm_up(PHOTOS, wait=True)
    forward = compiled.graph._forward
    compiled.graph._forward = lambda batch, t=None: tuple(torch.full_like(o, float("nan")) for o in forward(batch, t))
    x = image(64, 232)
    with caplog.at_level(logging.WARNING, logger="drcnet.serve.compiled"):
        out = compiled.restore(x)
    np.testing.assert_array_equal(out, eager.restore(x))
    assert compiled.last_stats["compiled"] == 0 and compiled.graph.eager_requests == 1
    assert any("non-finite" in r.getMessage() for r in caplog.records)
    compiled.graph._forward = forward                     # the next request uses the graph again
    compiled.restore(x)
    assert compiled.graph.state == "ready" and compiled.last_stats["compiled"] == 1


def test_threshold_changes_and_feature_probes_run_the_eager_model(no_inductor):
    compiled, eager = restorers()
    compiled.warm_up(PHOTOS, wait=True)
    x = image(64, 232)
    compiled.set_threshold(0.3)
    eager.set_threshold(0.3)
    np.testing.assert_array_equal(compiled.restore(x), eager.restore(x))
    assert compiled.last_stats["compiled"] == 0
    compiled.reset_threshold()
    with FeatureProbe(compiled.model) as probe:
        compiled.restore(x, probe=probe)
        assert probe.maps and compiled.last_stats["compiled"] == 0    # the hooks fired: the eager model ran
    compiled.restore(x)
    assert compiled.last_stats["compiled"] == 1


def test_a_compile_failure_falls_back_to_eager_with_one_log_line(monkeypatch, tmp_path, caplog):
    def broken(model, example, package, threads):
        raise RuntimeError("inductor exploded\nwith a long traceback")

    fake_compiler(monkeypatch, tmp_path)
    monkeypatch.setattr(drcnet.serve.compiled, "compile_package", broken)
    compiled, eager = restorers(meta={"task": "derain"})
    x = image(64, 232)
    with caplog.at_level(logging.INFO, logger="drcnet.serve.compiled"):
        compiled.warm_up(PHOTOS, wait=True)
        for _ in range(2):
            np.testing.assert_array_equal(compiled.restore(x), eager.restore(x))
            assert compiled.last_stats["compiled"] == 0
    assert [r.getMessage() for r in caplog.records] == [          # the line names the model's task
        "derain: serving the eager model: RuntimeError: inductor exploded"]


def test_the_next_start_loads_the_kept_package_and_any_change_builds_a_new_one(no_inductor):
    compiled, eager = restorers()
    compiled.warm_up(PHOTOS, wait=True)
    assert compiled.graph.state == "ready" and not compiled.graph.cached and len(no_inductor) == 1
    again, _ = restorers()                                # same weights, config and tiles: no build
    again.warm_up(PHOTOS, wait=True)
    assert again.graph.state == "ready" and again.graph.cached and len(no_inductor) == 1
    assert again.graph.agreement == compiled.graph.agreement
    x = image(64, 232)
    np.testing.assert_allclose(again.restore(x), eager.restore(x), atol=1e-6)
    assert again.last_stats["compiled"] == 1
    changed, _ = restorers()
    with torch.no_grad():
        next(changed.model.parameters()).add_(1e-3)      # other weights: another graph
    changed.warm_up(PHOTOS, wait=True)
    assert not changed.graph.cached and len(no_inductor) == 2
    torch.manual_seed(0)
    other_t = create_model("tiny", t=0.6)                 # another threshold t (a constant of the graph)
    Restorer(other_t, device="cpu", precision="fp32", compile=True, spec=SPEC).warm_up(PHOTOS, wait=True)
    assert len(no_inductor) == 3


def test_a_kept_graph_is_loaded_and_run_once_before_the_first_request(no_inductor):
    """What the app does before serving its page: a kept package serves at once, already past its slow first
    call; without one nothing happens here (warm_up builds it later in the background)."""
    first, _ = restorers()
    assert not first.load_kept_graph(PHOTOS) and first.graph.state == "idle" and not no_inductor
    first.warm_up(PHOTOS, wait=True)
    second, eager = restorers()
    calls = []
    graph = drcnet.serve.compiled.load_package
    drcnet.serve.compiled.load_package = lambda package, model: (lambda x: (calls.append(x.shape[0]),
                                                                           graph(package, model)(x))[1])
    assert second.load_kept_graph(PHOTOS) and second.graph.state == "ready" and len(no_inductor) == 1
    assert calls == [SPEC.batch]                          # run once, on a batch of the check tiles
    x = image(64, 232)
    np.testing.assert_allclose(second.restore(x), eager.restore(x), atol=1e-6)
    assert second.last_stats["compiled"] == 1


def test_a_failed_build_is_not_kept_so_the_next_start_tries_again(monkeypatch, tmp_path):
    built = fake_compiler(monkeypatch, tmp_path)
    working = drcnet.serve.compiled.compile_package
    monkeypatch.setattr(drcnet.serve.compiled, "compile_package",
                        lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    first, _ = restorers()
    first.warm_up(PHOTOS, wait=True)
    assert first.graph.state == "off" and "disk full" in first.graph.reason
    monkeypatch.setattr(drcnet.serve.compiled, "compile_package", working)
    second, _ = restorers()
    second.warm_up(PHOTOS, wait=True)
    assert second.graph.state == "ready" and len(built) == 1


def test_the_child_process_gets_the_model_and_tiles_and_returns_its_report(monkeypatch, tmp_path):
    """build_in_child's plumbing, with the child's main run here (it sees the stand-in compiler): the model and
    the tiles travel through files, the child rebuilds the model in the parent's dtype and layout, and its
    report comes back."""
    import contextlib

    built = fake_compiler(monkeypatch, tmp_path)
    monkeypatch.setattr(drcnet.serve.compiled.TileGraph, "isolate", True)
    commands = []

    def run_here(command, env, stdout, stderr):
        commands.append((command, env))
        with contextlib.redirect_stdout(stdout):
            drcnet.serve.compiled.child_main(command[-1])
        return 0

    monkeypatch.setattr(drcnet.serve.compiled.BUILDS, "run", run_here)
    niceness = []
    monkeypatch.setattr(drcnet.serve.compiled, "lower_thread_priority", niceness.append)
    monkeypatch.setattr(drcnet.serve.compiled, "end_with_parent", lambda: niceness.append("ends with parent"))
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    restorer = Restorer(create_model("tiny"), device="cpu", precision="bf16", compile=True, spec=SPEC)
    restorer.warm_up(PHOTOS, wait=True)
    (command, env), = commands
    assert command[1:3] == ["-m", "drcnet.serve.compiled"] and env["OMP_NUM_THREADS"] == "1"
    child_model, = built
    assert child_model is not restorer.graph.model
    assert next(child_model.parameters()).dtype == torch.bfloat16
    assert all(torch.equal(a, b) for a, b in zip(child_model.state_dict().values(),
                                                 restorer.model.state_dict().values()))
    assert restorer.graph.state == "ready" and restorer.graph.agreement[0] == float("inf")
    assert niceness == [drcnet.serve.compiled.COMPILE_NICE, "ends with parent"] and torch.get_num_threads() == 1
    assert child_model.compiled_for_threads == threads    # the kernels are written for the serving process
    torch.set_num_threads(threads)    # child_main set one thread in this process


def test_auto_without_a_cpp_compiler_stays_eager(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))                # an empty folder: no g++
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(drcnet.serve.compiled, "compile_package",
                        lambda *a, **kw: pytest.fail("auto must not try to compile"))
    torch.manual_seed(0)
    restorer = Restorer(create_model("tiny"), device="cpu", precision="fp32", compile="auto", spec=SPEC)
    restorer.warm_up(PHOTOS, wait=True)
    restorer.restore(image(64, 232))
    assert restorer.last_stats["compiled"] == 0 and "no C++ compiler" in restorer.describe_path()


def assert_same_maps(got: dict, want: dict, atol: float = 1e-5) -> None:
    """Two probes' stitched maps: the same blocks, and every map and summary part equal within atol."""
    assert set(got) == set(want)
    for key, g in got.items():
        w = want[key]
        assert (g.channels, g.height, g.width) == (w.channels, w.height, w.width), key
        if w.response is None:
            assert g.response is None and g.mask is None
        else:
            np.testing.assert_allclose(g.response, w.response, atol=atol, err_msg=str(key))
            np.testing.assert_allclose(g.mask, w.mask, atol=atol, err_msg=str(key))
            assert g.coverage == pytest.approx(w.coverage, abs=atol)
        for field in ("spatial", "energy", "identity", "fused"):
            gs, ws = getattr(g, field), getattr(w, field)
            assert (gs is None) == (ws is None), (key, field)
            if ws is not None:
                np.testing.assert_allclose(gs.mean, ws.mean, atol=atol, err_msg=f"{key} {field}")
                np.testing.assert_allclose(gs.channel, ws.channel, atol=atol, err_msg=f"{key} {field}")


@pytest.mark.parametrize("t", [None, 0.3, 0.55])
def test_a_probed_pass_runs_the_inspector_graph_at_its_t_and_gives_the_hooks_maps(no_inductor, t):
    """The inspector's graph (a MapsOutput: t an input, every block's maps as outputs) serves a probed tiled
    pass at the trained t and at others, and the probe gets from its outputs exactly what the eager model's
    hooks give: the same image and every stitched map (full block and mask-only blocks), in one pass."""
    compiled, eager = restorers()
    compiled.warm_up(PHOTOS, wait=True)
    compiled.warm_up_inspector(PHOTOS, wait=True)
    assert compiled.probe_graph.state == "ready" and compiled.graph.state == "ready"
    x = image(64, 232, seed=3)                            # 4 tiles: one full batch
    forwards = []                                         # the eager model must not run: no hook may fire
    handle = compiled.model.register_forward_pre_hook(lambda m, a: forwards.append(a[0].shape))
    try:
        with compiled.using(t=t), FeatureProbe(compiled.model, pca=False, full_blocks={(1, 1)}) as probe:
            out = compiled.restore(x, probe=probe)
    finally:
        handle.remove()
    assert forwards == [] and compiled.last_stats["compiled"] == 1
    assert "compiled inspector graph" in compiled.last_stats["path"]
    with eager.using(t=t), FeatureProbe(eager.model, pca=False, full_blocks={(1, 1)}) as hooked:
        want = eager.restore(x, probe=hooked)
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert_same_maps(probe.maps, hooked.maps)
    if t == 0.3:                                          # t reached the masks: tiny's M_sr lies around 0.5
        assert all(m.coverage > 0.5 for m in probe.maps.values() if m.coverage is not None)
    assert compiled.probe_graph.model.model.cfg.t == compiled.default_t       # the graph's copy keeps its t
    assert all(m.t == compiled.default_t for m in compiled.probe_graph.model.modules() if hasattr(m, "min_region"))


def test_a_pass_the_graph_does_not_run_says_it_ran_eagerly(no_inductor):
    """The facts name the path a pass took: a whole-image pass or a small photo beside a ready graph ran
    eagerly and must not be called compiled."""
    compiled, _ = restorers()
    compiled.warm_up(PHOTOS, wait=True)
    compiled.restore(image(64, 64))                       # one tile of four
    assert compiled.last_stats["compiled"] == 0 and compiled.last_stats["path"].startswith("eager model (not a")
    compiled.restore(image(64, 232))
    assert compiled.last_stats["path"].startswith("compiled graph (")


def upscaled(photo: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    h, w = photo.shape[:2]
    big = Image.fromarray(np.round(photo * 255).astype(np.uint8)).resize((side, round(side * h / w)), Image.BICUBIC)
    return np.asarray(big, np.float32) / 255


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("task", ["derain", "denoise", "deblur"])
def test_the_compiled_graph_agrees_with_eager_on_every_example_as_the_app_builds_it(task):
    """A real compile (torch.export + AOTInductor in a child process, as the app builds it: a minute or more
    cold on 2 cores, milliseconds from the package kept in .cache/graphs), checked as the app checks it, then
    every example of the task restored both ways: >= 45 dB and no pixel more than 40 grey levels off. Derain's rocket drew a 170 px black blob here before DFR masks of a pixel or two were
    dropped (dfr.ThresholdMask.min_region): 36.5 dB, one pixel 201 levels off."""
    from drcnet.eval.safety import example_photos

    path = CHECKPOINTS / f"{task}.safetensors"
    photos = example_photos(task)
    compiled = Restorer.from_checkpoint(path, device="cpu", compile=True)
    eager = Restorer.from_checkpoint(path, device="cpu")
    compiled.warm_up(list(photos.values()), wait=True)
    assert compiled.graph.state == "ready", compiled.describe_path()
    for name, photo in photos.items():
        if len(tiles_for(*photo.shape[:2], compiled.spec.tile, compiled.spec.overlap)) * 2 < compiled.spec.batch:
            photo = upscaled(photo, 512)       # a 256 px example is 4 tiles of 176 px: eager by design
        out = compiled.restore(photo)
        ref = eager.restore(photo)
        assert compiled.last_stats["compiled"] >= 1, name
        db, worst = agreement(out, ref)                   # in 8 bits, as a visitor gets it
        assert db >= 45 and worst <= 40, (name, db, worst)
    # the inspector's graph: the picture and every block's mask of a probed pass, as the hooks give them
    compiled.warm_up_inspector(list(photos.values()), wait=True)
    assert compiled.probe_graph.state == "ready", compiled.describe_path(probed=True)
    for name, photo in photos.items():
        if len(tiles_for(*photo.shape[:2], compiled.spec.tile, compiled.spec.overlap)) * 2 < compiled.spec.batch:
            photo = upscaled(photo, 512)
        with FeatureProbe(compiled.model, pca=False) as probe:
            out = compiled.restore(photo, probe=probe)
        assert compiled.last_stats["compiled"] >= 1, name
        with FeatureProbe(eager.model, pca=False) as hooked:
            ref = eager.restore(photo, probe=hooked)
        db, worst = agreement(out, ref)
        assert db >= 45 and worst <= 40, (name, db, worst)
        for key, m in hooked.maps.items():
            if m.coverage is not None:
                assert abs(probe.maps[key].coverage - m.coverage) <= 0.005, (name, key)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_the_building_process_and_its_compilers_stop_while_a_request_runs(tmp_path):
    """BuildPause.run stops the child's whole process group (the C++ compilers it starts included) from the moment
    hold() returns, in the holding thread, even while that thread then keeps the GIL (as a compiled call does for
    0.8 s: a build thread that polled a flag could not stop it then); release() continues it, and run returns its
    exit status."""
    import ctypes
    import sys
    import threading
    import time

    from drcnet.serve.compiled import BuildPause

    def stat(pid):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[11]) + int(fields[12])          # state, CPU ticks

    spin = "import time\nend = time.time() + 3\nwhile time.time() < end: pass"
    script = (f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {spin!r}]); "
              "print(p.pid, flush=True); sys.exit(p.wait() + 7)")
    builds, result = BuildPause(), []
    with open(tmp_path / "out", "w") as out:
        runner = threading.Thread(target=lambda: result.append(builds.run([sys.executable, "-c", script], stdout=out)))
        runner.start()
        while not (tmp_path / "out").read_text().strip():
            time.sleep(0.01)
        grandchild = int((tmp_path / "out").read_text())
        child = int(Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[1])     # its parent
        time.sleep(0.2)
        builds.hold()                                     # a request starts ...
        _, ticks = stat(grandchild)
        ctypes.PyDLL(None).usleep(400_000)                # ... and holds the GIL for 0.4 s (PyDLL keeps it)
        assert stat(child)[0] == "T" and stat(grandchild) == ("T", ticks)      # stopped all along
        time.sleep(3.0)                                   # stopped: the grandchild cannot end its 3 s spin,
        assert runner.is_alive()                          # nor the child exit
        builds.release()                                  # the request ended
        runner.join(10)
    assert result == [7]


def test_the_graph_loaders_modules_are_imported_before_the_page_even_with_nothing_kept(tmp_path):
    """load_kept (the app calls it before serving its page) imports the package loader's modules even when no
    graph is kept: their first import holds the GIL for up to 0.5 s at a time, which froze the page's event loop
    when the first built graph was loaded beside a request. A fresh process: nothing else has imported them."""
    import subprocess
    import sys

    script = f"""
import os, sys
os.environ["DRCNET_CACHE"] = {str(tmp_path)!r}
import numpy as np, torch, drcnet
from drcnet.model.inference import InferenceSpec
from drcnet.serve.engine import Restorer
model = drcnet.create_model("tiny")
restorer = Restorer(model, spec=InferenceSpec("matched", tile=32, overlap=8, batch=2), compile=True)
before = "torch._inductor" in sys.modules
assert restorer.load_kept_graph([np.zeros((64, 64, 3), np.uint8)]) is False     # nothing kept
print(before, "torch._inductor" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "True"]
