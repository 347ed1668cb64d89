"""drcnet.train --init (warm start) and --minutes (the cosine schedule fitted to a wall-clock budget)."""
import json
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

import drcnet
from drcnet.model.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from drcnet.train.config import TrainConfig
from drcnet.train.run import train


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    yy, xx = np.mgrid[0:64, 0:80] / 64.0
    for n in range(3):
        img = np.stack([0.5 + 0.4 * np.sin(xx * (2 + n) + c) * np.cos(yy * 3) for c in range(3)], -1)
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(folder / f"p{n}.png")
    return folder


def cfg(photos, out, **kw):
    base = dict(task="denoise", preset="tiny", data=str(photos), val_data=str(photos), iters=4, batch=2, patch=32,
                loss="l1", out=str(out), log_every=2, val_every=0, save_every=100, val_count=2, val_size=32,
                precision="fp32", threads=1, workers=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_init_starts_from_the_checkpoint_weights(photos, tmp_path):
    torch.manual_seed(7)
    source = drcnet.create_model("tiny")
    save_checkpoint(tmp_path / "init.safetensors", source, task="denoise", preset="tiny")
    result = train(cfg(photos, tmp_path / "run", init=str(tmp_path / "init.safetensors"), lr=1e-12, lr_min=0))
    trained, meta = load_checkpoint(tmp_path / "run" / "last.safetensors")
    for (name, a), b in zip(source.state_dict().items(), trained.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)      # lr ~0: still the init's weights
    assert meta["training"]["init"] == "init.safetensors"
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[1]["iter"] == 0 and "val_psnr" in log[1]                   # validated before the first step
    assert result["iterations"] == 4


def test_init_refuses_a_checkpoint_of_another_architecture(photos, tmp_path):
    save_checkpoint(tmp_path / "lite.safetensors", drcnet.create_model("lite"), task="denoise", preset="lite")
    with pytest.raises(CheckpointError, match="do not fit"):
        train(cfg(photos, tmp_path / "run", init=str(tmp_path / "lite.safetensors")))


BUDGET_MIN = 0.2       # 12 s: setup, validation, 2 warm-up steps, 2 s of timed steps, 2 s for the save, ~5 s of steps


@pytest.fixture(scope="module")
def minutes_run(photos, tmp_path_factory):
    """One --minutes run shared by the tests that read it (each run spends its whole budget training)."""
    out = tmp_path_factory.mktemp("minutes") / "run"
    start = time.time()
    result = train(cfg(photos, out, minutes=BUDGET_MIN, iters=10 ** 6, save_every=2))
    return out, result, time.time() - start


def test_minutes_fits_the_schedule_to_the_budget(minutes_run):
    out, result, elapsed = minutes_run
    assert elapsed < BUDGET_MIN * 60 + 6                                  # ends inside its budget (+ slack)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    (fixed,) = [r for r in log if r.get("event") == "schedule"]
    assert result["planned_iterations"] == fixed["iters"] == result["iterations"] > fixed["iter"]
    steps = [r for r in log if "lr" in r]
    assert steps[-1]["lr"] == pytest.approx(1e-7, abs=1e-9)               # the cosine reached its floor
    assert json.loads((out / "config.json").read_text())["iters"] == 10 ** 6        # the config as given ...
    assert torch.load(out / "state.pt", weights_only=True)["schedule"]["iters"] == fixed["iters"]   # ... the fit


def test_minutes_run_resumes_with_the_schedule_it_measured(minutes_run, photos, tmp_path):
    out, first, _ = minutes_run
    shutil.copytree(out, tmp_path / "run")                                # the shared run stays as it ended
    again = train(cfg(photos, tmp_path / "run", minutes=BUDGET_MIN, iters=10 ** 6, save_every=2, resume=True))
    assert again["planned_iterations"] == first["planned_iterations"]
    assert again["start_iter"] == first["iterations"] == again["iterations"]


def test_minutes_must_be_positive():
    with pytest.raises(ValueError, match="minutes"):
        TrainConfig(minutes=0)


# ---------------------------------------------------------------------------------------------------------------
# --schedule time: the learning rate follows the elapsed fraction of the budget

def test_time_schedule_warms_up_then_anneals_to_the_floor():
    from drcnet.train.schedule import WarmupCosine

    s = WarmupCosine(1e-3, 1e-6)
    assert s.lr(0.0) == 0.0 and s.lr(s.WARMUP / 2) == pytest.approx(5e-4)
    assert s.lr(s.WARMUP) == pytest.approx(1e-3) and s.lr(1.0) == s.lr(1.5) == pytest.approx(1e-6)
    lrs = [s.lr(f) for f in np.linspace(s.WARMUP, 1, 50)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert s.lr((1 + s.WARMUP) / 2) == pytest.approx((1e-3 + 1e-6) / 2)   # cosine: half-way at mid-time


def test_time_schedule_needs_minutes():
    with pytest.raises(ValueError, match="needs --minutes"):
        TrainConfig(schedule="time")


TIME_MIN = 0.15        # 9 s of budget


def steps_of(out):
    return [r for r in (json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.fixture(scope="module")
def time_run(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("time") / "run"
    start = time.time()
    result = train(cfg(photos, out, schedule="time", minutes=TIME_MIN, lr=1e-3, lr_min=1e-6, log_every=1,
                       val_every=10 ** 6, save_every=5))
    return out, result, time.time() - start


def test_time_run_ends_inside_its_budget_with_the_schedule_complete(time_run):
    out, result, elapsed = time_run
    assert elapsed < TIME_MIN * 60 + 2
    steps = steps_of(out)
    assert len(steps) == result["iterations"] > 10
    # set-up and the first validation count in the budget (on a busy machine a third of these 9 s; of a real
    # run's hour, a few seconds), then the lr anneals to the floor
    lrs = [r["lr"] for r in steps]
    assert lrs[-1] == pytest.approx(1e-6) and lrs[0] > 1e-5
    # steps that fall inside the warm-up (an idle machine sets up fast) rise to the peak; none after it rises
    peak = int(np.argmax(lrs))
    assert lrs[peak] <= 1e-3 * (1 + 1e-9)
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    # every step's lr is added to cum_lr (the lr logged is the step's own in a time-scheduled run)
    assert np.diff([r["cum_lr"] for r in steps]) == pytest.approx([r["lr"] for r in steps[1:]], rel=1e-9)
    assert result["planned_iterations"] is None and "elapsed fraction" in result["schedule"]
    assert read_metadata(out / "last.safetensors")["training"]["iterations"] == result["iterations"]


SAVED_CLOCK = 4.5      # s: the clock the resumed run continues from (half of TIME_MIN's 9 s)


def test_time_run_resumes_on_its_clock(photos, tmp_path, monkeypatch):
    """A --schedule time run resumed from its state trains only for what is left of its budget, on the clock
    it saved; the time between the runs does not count.

    Robust on a busy machine (the suite started in the background beside a CPU-heavy job), which stretches
    set-up, steps, validations and saves by an unknown factor: the first session stops at whatever iteration it
    reached (1 to 4), its saved clock is then set to SAVED_CLOCK, so what is left is known (4.5 s) and far from
    a whole budget (a resume that forgot the clock trains about 7.7 s); the real time compared with it is that of
    the resumed session up to its last step, not of the final validation and save after it (the reserve they
    were given is measured once, on a machine whose load may change); and no periodic save falls between
    steps (a save slower than two steps passes the deadline before the floor step: the run then stops at the
    deadline, its last lr a little above the floor)."""
    from drcnet.train import run as T
    from drcnet.train.schedule import WarmupCosine

    out = tmp_path / "run"
    kw = dict(schedule="time", minutes=TIME_MIN, lr=1e-3, lr_min=1e-6, log_every=1, val_every=10 ** 6,
              save_every=10 ** 6)
    first = train(cfg(photos, out, stop_at=4, **kw))
    state = torch.load(out / "state.pt", weights_only=True)
    stopped = state["iter"]
    assert 1 <= stopped <= 4 and stopped == first["iterations"] and state["wall_time_s"] > 0
    state["wall_time_s"] = SAVED_CLOCK
    torch.save(state, out / "state.pt")

    loop_end = []
    real_loop = T.TrainingRun._loop

    def timed_loop(self):
        try:
            return real_loop(self)
        finally:
            loop_end.append(time.time())

    monkeypatch.setattr(T.TrainingRun, "_loop", timed_loop)
    time.sleep(1.0)                                            # time between the runs does not count
    t0 = time.time()
    again = train(cfg(photos, out, resume=True, **kw))
    trained = loop_end[0] - t0            # the resumed session's set-up and steps, not its final validation and save
    steps = steps_of(out)
    assert [r["iter"] for r in steps] == list(range(1, again["iterations"] + 1))
    resumed = steps[stopped:]
    assert resumed[0]["elapsed_s"] >= SAVED_CLOCK                          # the clock went on from the state ...
    assert resumed[-1]["elapsed_s"] - SAVED_CLOCK <= trained + 0.01        # ... by this session's time alone
    assert resumed[-1]["elapsed_s"] <= TIME_MIN * 60                       # and the last step ended in the budget
    assert trained < TIME_MIN * 60 - SAVED_CLOCK + 1.0                     # only what was left of the budget
    assert resumed[0]["cum_lr"] == pytest.approx(first["cum_lr"] + resumed[0]["lr"], rel=1e-9)
    # the schedule went on from the saved clock's fraction (past half of it: not back to the peak) and ended
    # annealed: at the floor, or within 2 steps of it where a busy machine made the deadline pass first
    lr_half = WarmupCosine(1e-3, 1e-6).lr(0.5)
    assert resumed[0]["lr"] < lr_half and steps[-1]["lr"] <= WarmupCosine(1e-3, 1e-6).lr(0.8)
    with pytest.raises(ValueError, match="started with minutes"):
        train(cfg(photos, out, resume=True, **{**kw, "minutes": 1.0}))


def test_a_paused_step_does_not_end_a_time_run(photos, tmp_path, monkeypatch):
    """One step that spans a SIGSTOP pause (here: 3 s of a 9 s budget) is not the step rate: the run goes on
    training until its deadline instead of stopping right after the pause."""
    from drcnet.train import run as T

    real_step = T.TrainingRun.step

    def step(self, degraded, clean):
        if self.it == 8:
            time.sleep(3.0)
        return real_step(self, degraded, clean)

    monkeypatch.setattr(T.TrainingRun, "step", step)
    out = tmp_path / "run"
    result = train(cfg(photos, out, schedule="time", minutes=TIME_MIN, lr=1e-3, lr_min=1e-6, log_every=1,
                       val_every=10 ** 6, save_every=10 ** 6))
    steps = steps_of(out)
    assert result["iterations"] >= 8 + 8 and len(steps) == result["iterations"]   # it stopped at 10 before
    assert steps[-1]["lr"] == pytest.approx(1e-6)


# ---------------------------------------------------------------------------------------------------------------
# --compile

def test_compile_auto_pays_only_for_long_runs_with_a_compiler(monkeypatch):
    from drcnet.core import inductor
    from drcnet.train import step as T

    cpu = torch.device("cpu")
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(inductor.shutil, "which", lambda name: "/usr/bin/" + name)
    assert not T.compile_pays(TrainConfig(compile="off", iters=10 ** 6), cpu, 10 ** 6)
    assert T.compile_pays(TrainConfig(compile="on"), cpu, 2)
    assert not T.compile_pays(TrainConfig(compile="auto"), cpu, 999)
    assert T.compile_pays(TrainConfig(compile="auto"), cpu, 1000)
    assert not T.compile_pays(TrainConfig(compile="auto", minutes=5), cpu, 10 ** 6)
    assert T.compile_pays(TrainConfig(compile="auto", minutes=30, schedule="time"), cpu, 10 ** 12)
    monkeypatch.setattr(inductor.shutil, "which", lambda name: None)
    assert not T.compile_pays(TrainConfig(compile="auto"), cpu, 10 ** 6)       # no C++ compiler: eager


def test_a_failing_compile_falls_back_to_eager(photos, tmp_path, monkeypatch, capsys):
    def broken_compile(module, *args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("inductor exploded")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    result = train(cfg(photos, tmp_path / "run", compile="on", iters=3, log_every=1))
    assert result["iterations"] == 3 and result["compile"] is False
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[0]["compile"] is True
    (failed,) = [r for r in log if r.get("event") == "compile_failed"]
    assert "inductor exploded" in failed["error"] and failed["iter"] == 0
    assert capsys.readouterr().err.count("torch.compile failed, training eagerly") == 1
    assert [r["iter"] for r in log if "loss" in r] == [1, 2, 3]


def test_compile_raising_at_once_also_falls_back():
    from drcnet.core.inductor import EagerFallback

    failures = []
    net = torch.nn.Identity()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "compile", lambda m, **kw: (_ for _ in ()).throw(RuntimeError("no compiler")))
        forward = EagerFallback(net, failures.append)
    x = torch.ones(2)
    assert torch.equal(forward(x), x) and len(failures) == 1 and forward.compiled is None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_compiled_run_trains_and_saves_plain_state_dicts(photos, tmp_path):
    """The one test that really compiles (a tiny model, 16 px patches): about a minute on two free cores,
    340 s measured on two cores shared with a training run."""
    out = tmp_path / "run"
    result = train(cfg(photos, out, compile="on", iters=2, patch=16, val_size=16, log_every=1))
    assert result["compile"] is True and result["iterations"] == 2
    state = torch.load(out / "state.pt", weights_only=True)
    assert not [k for k in list(state["model"]) + list(state["ema"]) if "_orig_mod" in k]
    model, _ = load_checkpoint(out / "last.safetensors")
    assert not [k for k in model.state_dict() if "_orig_mod" in k]
    assert all(np.isfinite(h["loss"]) for h in result["history"])
