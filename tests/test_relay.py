"""The relay's and the release's decisions (drcnet/ops/relay.py, drcnet/ops/release.py), with fake evaluations: a candidate
ships only when it beats the shipped weights on validation and test and passes the grid gate, and every leg is
appended to legs.json and to the card. No training, no real evaluation."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import drcnet
from drcnet.ops import relay, release
from drcnet.model.checkpoint import read_metadata, save_checkpoint

SETTINGS = ["kernel13_seed101", "kernel19_seed102"]


def fake_eval(psnr: float, grid=1.1, local=1.2) -> dict:
    mean = {s: {"input": {"psnr": 25.0, "ssim": 0.7}, "drcnet": {"psnr": psnr + i, "ssim": 0.8}}
            for i, s in enumerate(SETTINGS)}
    return {"task": "deblur", "settings": SETTINGS, "methods": ["input", "drcnet"], "y_channel": False,
            "max_side": 256, "mean": mean, "reductions": {s: {} for s in SETTINGS},
            "grid_max": {"input": 1.0, "drcnet": grid}, "grid_local_max": {"input": 1.0, "drcnet": local}}


def fake_candidate(val: float, test: float, grid=1.1, local=1.2, photo=1.1) -> dict:
    return {"val": fake_eval(val), "test": fake_eval(test, grid, local),
            "real_photos": {"assets/clock_motion.png": photo},
            "latency_512_s": {"whole": 0.1, "served": 0.2, "served_as": "tiles", "device": "cpu",
                              "precision": "fp32", "cpu": "test"}}


@pytest.fixture
def shipped(tmp_path):
    """checkpoints/ with tiny deblur weights scoring val 27.0, test 26.0; and a finished run."""
    ckpts, run = tmp_path / "checkpoints", tmp_path / "runs" / "deblur-1"
    ckpts.mkdir()
    run.mkdir(parents=True)
    torch.manual_seed(0)
    save_checkpoint(ckpts / "deblur.safetensors", drcnet.create_model("tiny"), task="deblur", preset="tiny")
    (ckpts / "deblur.val.json").write_text(json.dumps(fake_eval(27.0)))
    (ckpts / "deblur.test.json").write_text(json.dumps(fake_eval(26.0)))
    (ckpts / "deblur.md").write_text("# old card\n")
    torch.manual_seed(1)
    save_checkpoint(run / "best.safetensors", drcnet.create_model("tiny"), task="deblur", preset="tiny",
                    training={"loss": "l1", "iterations": 40})
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"iter": 0, "val_psnr": 27.0}, {"iter": 20, "loss": 0.1, "lr": 1e-4},
        {"iter": 40, "loss": 0.1, "lr": 5e-5}, {"iter": 40, "val_psnr": 27.3}]) + "\n")
    return ckpts, run


def leg(shipped, tmp_path, candidate, photos=()):
    ckpts, run = shipped
    return relay.finish_leg("deblur", run, ckpts, 30.0, "cpu test", tmp_path / "candidates", evaluations=candidate,
                            log=lambda *a: None, photos=list(photos))


def test_a_better_candidate_is_shipped_and_the_leg_recorded(shipped, tmp_path):
    ckpts, _ = shipped
    before = (ckpts / "deblur.safetensors").read_bytes()
    result = leg(shipped, tmp_path, fake_candidate(27.2, 26.1))
    assert result["ship"] and result["gate"] == "pass"
    assert (ckpts / "deblur.safetensors").read_bytes() != before
    assert read_metadata(ckpts / "deblur.safetensors")["metrics"]["test"]["kernel13_seed101"]["drcnet"]["psnr"] == 26.1
    assert json.loads((ckpts / "deblur.test.json").read_text())["mean"]["kernel13_seed101"]["drcnet"]["psnr"] == 26.1
    (entry,) = json.loads((ckpts / "deblur.legs.json").read_text())
    assert entry["iterations"] == 40 and entry["cumulative_lr"] == pytest.approx(20 * 1e-4 + 20 * 5e-5)
    assert entry["test_settings"]["kernel19_seed102"] == [27.0, 27.1]
    card = (ckpts / "deblur.md").read_text()
    assert "## Relay legs" in card and "| 27.50 -> 27.70 |" in card and "| pass | yes |" in card
    assert "## Against the weights it replaces" in card                    # the candidate's card was promoted


@pytest.mark.parametrize("candidate, reason", [
    (fake_candidate(26.9, 26.5), "val: 27.400 dB is not above the shipped 27.500"),
    (fake_candidate(27.5, 25.9), "test: 26.400 dB is not above the shipped 26.500"),
    (fake_candidate(27.5, 26.5, grid=1.7), "grid-artifact ratio of 1.70"),
    (fake_candidate(27.5, 26.5, local=2.4), "local grid ratio of 2.40"),
    (fake_candidate(27.5, 26.5, photo=2.45), "clock_motion.png has a local grid ratio of 2.45"),
])
def test_a_candidate_worse_on_val_or_test_or_failing_the_gate_is_refused(shipped, tmp_path, candidate, reason):
    ckpts, _ = shipped
    before = (ckpts / "deblur.safetensors").read_bytes()
    result = leg(shipped, tmp_path, candidate)
    assert not result["ship"] and any(reason in r for r in result["reasons"]), result["reasons"]
    assert (ckpts / "deblur.safetensors").read_bytes() == before          # nothing replaced
    assert (ckpts / "deblur.md").read_text().startswith("# old card")       # the card kept, the leg appended
    assert "| no |" in (ckpts / "deblur.md").read_text()
    with pytest.raises(SystemExit, match="not promoting"):
        release.promote("deblur", tmp_path / "candidates" / "deblur-deblur-1", ckpts)
    leg(shipped, tmp_path, candidate)                                       # a second leg: appended, not replaced
    assert len(json.loads((ckpts / "deblur.legs.json").read_text())) == 2
    assert (ckpts / "deblur.md").read_text().count("## Relay legs") == 1


def test_a_leg_trained_by_hand_is_recorded_with_its_minutes_and_the_trainers_own_cumulative_lr(shipped, tmp_path):
    ckpts, run = shipped
    torch.manual_seed(1)
    save_checkpoint(run / "best.safetensors", drcnet.create_model("tiny"), task="deblur", preset="tiny",
                    training={"loss": "l1", "wall_time_s": 1800})
    with (run / "log.jsonl").open("a") as f:
        f.write(json.dumps({"iter": 50, "loss": 0.1, "lr": 4e-5, "cum_lr": 0.0049}) + "\n")
    result = relay.finish_leg("deblur", run, ckpts, None, "cpu", tmp_path / "candidates",
                              evaluations=fake_candidate(26.9, 26.5), log=lambda *a: None, photos=[])
    assert result["minutes"] == 30.0 and result["cumulative_lr"] == pytest.approx(0.0049)
    assert result["iterations"] == 50 and not result["ship"]


def test_the_training_budget_leaves_the_evaluation_out_and_the_trainer_keeps_its_own_deadline(shipped):
    ckpts, run = shipped
    estimate = relay.eval_estimate("deblur", ckpts)
    assert estimate >= 180
    minutes = relay.train_minutes(60, estimate)
    assert minutes < 60 - estimate / 60
    cmd = relay.trainer_command("deblur", minutes, run, ckpts, "python -m drcnet.train")
    assert cmd[cmd.index("--schedule") + 1] == "time" and cmd[cmd.index("--recipe") + 1] == "deblur"
    assert float(cmd[cmd.index("--minutes") + 1]) == pytest.approx(minutes, abs=0.01)
    assert cmd[cmd.index("--threads") + 1] == "1"                   # a core to itself, the other for the session
    assert "--threads" not in relay.trainer_command("deblur", minutes, run, ckpts, "python -m drcnet.train", 0)
    with pytest.raises(SystemExit, match="give more"):
        relay.train_minutes(3, estimate)


def test_sigterm_stops_the_relay_after_the_trainer_saved(shipped, tmp_path):
    """The relay forwards SIGTERM to its trainer as SIGINT (the trainer saves on it), then exits cleanly
    without evaluating."""
    ckpts, _ = shipped
    stub = tmp_path / "stub.py"
    stub.write_text("import signal, sys, time, os\n"
                    "out = sys.argv[sys.argv.index('--out') + 1]\n"
                    "def save(*a):\n"
                    "    os.makedirs(out, exist_ok=True); open(out + '/saved', 'w').close(); sys.exit(1)\n"
                    "signal.signal(signal.SIGINT, save)\n"
                    "print('training', flush=True)\n"
                    "time.sleep(60)\n")
    cmd = [sys.executable, "-c", "import sys; from drcnet.ops.relay import main; main(sys.argv[1:])",
           "--minutes", "30", "--task", "deblur", "--checkpoints", str(ckpts), "--runs", str(tmp_path / "relay"),
           "--trainer", f"{sys.executable} {stub}"]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "relay").glob("*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped: the trainer saved" in out
    (run,) = (tmp_path / "relay").iterdir()
    assert (run / "saved").is_file() and not (ckpts / "deblur.legs.json").exists()


def test_the_card_curve_comes_from_a_run_log_or_from_a_burst_json(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"iter": 0, "val_psnr": 26.5}\n{"iter": 9, "loss": 1}\n'
                                   '{"iter": 9, "val_psnr": 26.9}\n'
                                   '{"iter": 12, "val_ps')                 # cut short by a kill
    assert release.validation_curve(run) == [(0, 26.5), (9, 26.9)]
    burst = tmp_path / "burst.json"
    burst.write_text(json.dumps({"train": [{"task": "denoise", "log": [{"iter": 0, "val_psnr": 30.0}]},
                                           {"task": "deblur", "log": [{"iter": 0, "val_psnr": 27.0},
                                                                      {"iter": 50, "val_psnr": 27.4}]}]}))
    assert release.validation_curve(burst, "deblur") == [(0, 27.0), (50, 27.4)]


def test_the_card_tracks_the_dfr_mask_against_the_learning_rate_summed_over_all_legs(shipped, tmp_path):
    ckpts, run = shipped
    def mask(cum_lr, p99, coverage):
        return {"event": "mask", "iter": 40, "cum_lr": cum_lr,
                "blocks": {"stage1.level0": {"t": 0.75, "p1": 0.1, "p50": 0.4, "p99": p99, "coverage": coverage,
                                             "margin99": 0.0}}}
    with (run / "log.jsonl").open("a") as f:
        f.write(json.dumps(mask(0.0, 0.512, 0.0)) + "\n" + json.dumps(mask(0.003, 0.761, 0.0123)) + "\n")
    first = leg(shipped, tmp_path, fake_candidate(26.9, 26.5))
    assert [m["blocks"]["stage1.level0"]["p99"] for m in first["mask"]] == [0.512, 0.761]
    leg(shipped, tmp_path, fake_candidate(26.9, 26.5))                      # the same run recorded again
    card = (ckpts / "deblur.md").read_text()
    assert "### The DFR mask along the legs" in card and "t = 0.75" in card
    # the second leg's points start where the first leg's summed lr ended (its cumulative_lr from the steps)
    offset = first["cumulative_lr"]
    assert f"| {offset:.3g} | 0.512 |" in card and f"| {offset + 0.003:.3g} | 0.761 (1.2 %) |" in card
    assert "| 0 | 0.512 |" in card and "| 0.003 | 0.761 (1.2 %) |" in card


def test_each_leg_records_where_the_mask_points_before_and_after_and_the_card_shows_it(shipped, tmp_path):
    """The leg carries the per-block AUC of M_sr against the true degradation (drcnet.eval.alignment) for the
    weights it started from and the candidate; the card's table shows before -> after."""
    import numpy as np
    from drcnet.eval.alignment import alignment_table
    from drcnet.model.checkpoint import load_checkpoint

    ckpts, run = shipped
    rng = np.random.default_rng(0)
    photos = [np.clip(rng.random((48, 48, 3)).cumsum(0) / 30, 0, 1).astype(np.float32) for _ in range(2)]

    def aucs(weights):
        model, _ = load_checkpoint(weights)
        table = alignment_table("deblur", drcnet.Restorer(model, device="cpu", precision="fp32"), photos)
        return {f"stage{s}.level{lv}": round(a.auc, 3) for (s, lv), a in table.items()}
    expected = {"before": aucs(ckpts / "deblur.safetensors"), "after": aucs(run / "best.safetensors")}
    result = leg(shipped, tmp_path, fake_candidate(26.9, 26.5), photos)
    assert result["alignment"]["before"] == expected["before"] and result["alignment"]["after"] == expected["after"]
    assert result["alignment"]["before"] != result["alignment"]["after"]           # two different weights
    card = (ckpts / "deblur.md").read_text()
    assert "### Does M_sr point at the degradation?" in card and "2 validation photos, 48x48 px" in card
    first = f"{expected['before']['stage1.level0']:.2f} -> {expected['after']['stage1.level0']:.2f}"
    assert first in card and json.loads((ckpts / "deblur.legs.json").read_text())[0]["alignment"] == result["alignment"]
    assert relay.leg_alignment("deblur", ckpts / "deblur.safetensors", run / "best.safetensors", []) == \
        {"photos": "no validation photos found"}                                   # nothing measured


def test_a_leg_records_its_pace_and_the_hours_its_rate_predicts_to_the_goal(tmp_path):
    """Iterations per minute, "under half" the task's fastest recorded rate, and the recipe's worst gap after
    the leg divided by the leg's test gain per hour."""
    from drcnet.train.recipe import load_recipe

    recipe = load_recipe("derain")
    mean = {t.setting: {t.over: {"psnr": 20.0}, "drcnet": {"psnr": 20.0 + t.margin - 0.5}} for t in recipe.targets}
    (tmp_path / "derain.test.json").write_text(json.dumps({"mean": mean}))
    leg = {"iterations": 300, "minutes": 30.0, "test_before": 30.0, "test_after": 30.25}
    fast = relay.pace("derain", leg, [{"iterations_per_minute": 25.0}], tmp_path)
    assert fast["iterations_per_minute"] == 10.0 and fast["slow"]                  # 10 < 25 / 2
    assert fast["goal_gap_db"] == -0.5 and fast["hours_to_goal"] == 1.0            # 0.5 dB at 0.5 dB per hour
    flat = relay.pace("derain", dict(leg, test_after=30.0), [], tmp_path)
    assert not flat["slow"] and flat["hours_to_goal"] is None
    # rates are compared in pixels: 10 iterations of 176 px patches a minute are not slow beside 25 of 128 px
    big = dict(leg, recipe={"batch": 8, "patch": 176})
    assert not relay.pace("derain", big, [{"iterations_per_minute": 25.0, "recipe": {"batch": 8, "patch": 128}}],
                          tmp_path)["slow"]
    assert relay.pace("derain", big, [{"iterations_per_minute": 21.0, "recipe": {"batch": 8, "patch": 176}}],
                      tmp_path)["slow"]


def test_a_leg_records_the_recipe_its_run_trained_with_and_why_it_was_chosen(shipped, tmp_path):
    from drcnet.train.recipe import load_recipe

    ckpts, run = shipped
    train = load_recipe("deblur").train
    (run / "config.json").write_text(json.dumps({**train, "out": str(run), "minutes": 30.0, "seed": 0}))
    result = relay.finish_leg("deblur", run, ckpts, 30.0, "cpu", tmp_path / "candidates", log=lambda *a: None,
                              evaluations=fake_candidate(26.9, 26.5), photos=[], chosen="deblur: worth measuring")
    assert result["recipe"] == train and result["chosen"] == "deblur: worth measuring"
    assert relay.under_recipe(json.loads((ckpts / "deblur.legs.json").read_text())[-1], train)
    (run / "config.json").write_text(json.dumps({**train, "clean_share": 0.1, "fft_weight": 0.1, "seed": 0}))
    lever = relay.finish_leg("deblur", run, ckpts, 30.0, "cpu", tmp_path / "candidates", log=lambda *a: None,
                             evaluations=fake_candidate(26.9, 26.5), photos=[])
    assert lever["recipe"] == {**train, "clean_share": 0.1}    # off the recipe (fft_weight is at its default)
    assert not relay.under_recipe(json.loads((ckpts / "deblur.legs.json").read_text())[-1], train)
    rows = [r for r in (ckpts / "deblur.md").read_text().splitlines() if r.startswith("| 20")]
    assert " | the recipe | " in rows[-2] and " | clean_share 0.1 | " in rows[-1]     # the card says which is which
    leg = {"task": "derain", "recipe": {k: v for k, v in load_recipe("derain").train.items() if k != "clean_share"}}
    assert release.trained_with(leg) == "clean_share 0.0"     # a lever today's recipe sets, at the default then
    (run / "config.json").unlink()                            # a run that does not say how it trained
    assert relay.finish_leg("deblur", run, ckpts, 30.0, "cpu", tmp_path / "candidates", log=lambda *a: None,
                            evaluations=fake_candidate(26.9, 26.5), photos=[])["recipe"] == {}


def relay_main(monkeypatch, ckpts, runs, *args) -> tuple[list, dict]:
    """main() with the trainer and the evaluation mocked: the trainer commands it ran and finish_leg's arguments."""
    commands, finished = [], {}
    monkeypatch.setattr(relay.signal, "signal", lambda *a: None)          # keep pytest's own handlers
    monkeypatch.setattr(relay, "run_logged", lambda cmd, **kw: (commands.append(cmd), (0, ""))[1])
    monkeypatch.setattr(relay, "finish_leg", lambda task, run, *a, **kw: finished.update(kw, task=task) or finished)
    relay.main(["--minutes", "60", "--checkpoints", str(ckpts), "--runs", str(runs), *args])
    return commands, finished


def test_task_auto_trains_the_task_the_chooser_picks_and_a_named_task_skips_it(shipped, tmp_path, monkeypatch):
    from drcnet.train.recipe import load_recipe

    ckpts, _ = shipped
    for task, gain in (("deblur", 0.01), ("denoise", 0.3), ("derain", 0.02)):    # dB in each 60 min leg
        legs = [{"task": task, "date": "2026-12-08 10:00", "minutes": 60.0, "val_before": 30.0,
                 "val_after": 30.0 + gain, "ship": True, "eval_seconds": 100, "recipe": load_recipe(task).train}] * 2
        (ckpts / f"{task}.legs.json").write_text(json.dumps(legs))
    (cmd,), finished = relay_main(monkeypatch, ckpts, tmp_path / "relay", "--task", "auto")
    assert cmd[cmd.index("--recipe") + 1] == "denoise" and finished["task"] == "denoise"
    assert finished["chosen"].startswith("denoise: +0.30 dB/h on validation")
    assert "deblur: plateaued" in finished["chosen"]
    monkeypatch.setattr(relay, "auto_task", lambda *a: pytest.fail("a named task is not chosen"))
    (cmd,), finished = relay_main(monkeypatch, ckpts, tmp_path / "relay", "--task", "derain")
    assert cmd[cmd.index("--recipe") + 1] == "derain" and finished["chosen"] is None


def test_a_leg_can_continue_other_weights_and_is_then_not_counted_as_the_recipes(shipped, tmp_path, monkeypatch):
    """--init: the trainer continues the named weights (an unshipped leg's candidate); the leg is judged against
    the shipped weights as any other, records what it continued, and is left out of the recipe's rate."""
    from drcnet.train.recipe import load_recipe

    ckpts, run = shipped
    chained = tmp_path / "candidates" / "deblur-earlier" / "deblur.safetensors"
    (cmd,), finished = relay_main(monkeypatch, ckpts, tmp_path / "relay", "--task", "deblur", "--init", str(chained))
    assert cmd[cmd.index("--init") + 1] == str(chained) and finished["init"] == chained
    (plain,), finished = relay_main(monkeypatch, ckpts, tmp_path / "relay", "--task", "deblur")
    assert plain[plain.index("--init") + 1] == str(ckpts / "deblur.safetensors") and finished["init"] is None
    monkeypatch.undo()
    train = load_recipe("deblur").train
    (run / "config.json").write_text(json.dumps({**train, "out": str(run), "seed": 0}))
    result = relay.finish_leg("deblur", run, ckpts, 30.0, "cpu", tmp_path / "candidates", log=lambda *a: None,
                              evaluations=fake_candidate(26.9, 26.5), photos=[], init=chained)
    assert result["init"] == str(chained) and result["recipe"] == train
    assert " | the recipe; from deblur.safetensors | " in (ckpts / "deblur.md").read_text()
    assert not relay.under_recipe(result, train) and relay.under_recipe({**result, "init": None}, train)
