"""The quality relay: every idle CPU minute trains the task whose next leg buys the most, and only better weights
are shipped.

    nice -n 10 python scripts/relay.py --minutes 120 --task auto &    # one leg, in the background
    kill -STOP <pid> / kill -CONT <pid>                        # pause around a benchmark (the trainer's too)
    python scripts/relay.py --legs-only runs/relay-deblur-1 --task deblur --leg-minutes 95   # a leg run by hand
    python scripts/relay.py --task derain --minutes 60 --init runs/candidates/derain-RUN/derain.safetensors
                                                           # continue an unshipped leg, judged against the shipped

One leg: pick the task (`--task auto`: choose_task, from the legs already recorded; or the task named);
continue its shipped weights with its recipe on the wall-clock schedule (`python -m drcnet.train --recipe TASK
--init checkpoints/TASK.safetensors --schedule time --minutes M_train`), where M_train leaves the
measured (else estimated) evaluation time and a start-up margin out of --minutes; then make the run a release
candidate (drcnet.ops.release: validation, test, grid gate), ship it only if it beats the shipped weights on
validation and test and passes the gate, and in every case append the leg to checkpoints/<task>.legs.json and
to the "Relay legs" table of checkpoints/<task>.md. The leg also records, per DFR block, how well M_sr points at
the degradation (its ROC-AUC against the true degradation map, drcnet.eval.alignment, docs/science.md) on the
validation photos, for the weights before and after the leg: whether training moves the mask's alignment.

The choice (`--task auto`, choose_task): what a leg buys is its validation gain per training hour, pooled over
the task's last WINDOW legs trained with the recipe as it is now (each leg records its [train] settings; a leg of
an older recipe says nothing about this one). In order: a task with no such leg (worth measuring; the one
furthest from its targets first), then the task gaining most per hour; a task whose targets are met only after
every one still short; last of all a plateaued task (under PLATEAU_DB_PER_HOUR, or WINDOW legs in a row not
shipped), picked only when every task is. The reason, with its numbers, is logged and stored in the leg
("chosen").

Time: the trainer keeps its own deadline (it ends its schedule, validates and saves at M_train), and the relay
puts no wall-clock timeout on it: a paused (SIGSTOP) relay must not kill its child for the minutes it was
stopped. SIGTERM or SIGINT stops the leg: the trainer is sent SIGINT (it saves its state), the relay exits
without evaluating, and prints how to record the run later (--legs-only).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from drcnet.ops import release
from drcnet.core.device import machine
from drcnet.core.files import read_jsonl
from drcnet.ops.jobs import ROOT, log, run_logged
from drcnet.core.paths import checkpoint_file, SHIPPED
from drcnet.core.tasks import TASKS

START_MARGIN_S = 120.0     # the trainer's start-up (imports, photos) and its final validation and save
EVAL_SAFETY = 1.5          # an estimated evaluation time is multiplied by this


def eval_estimate(task: str, checkpoints: Path) -> float:
    """Seconds the candidate's evaluation will take: the last leg's measured time, else the time the shipped
    evaluation files record for DRCNet and the cheap baselines (x EVAL_SAFETY), plus the latency timing."""
    legs = load_legs(task, checkpoints)
    if legs and legs[-1].get("eval_seconds"):
        return max(float(legs[-1]["eval_seconds"]) * 1.2, 120.0)
    total = 0.0
    for split in ("val", "test"):
        saved = checkpoint_file(checkpoints, task, split)
        if saved.is_file():
            seconds = json.loads(saved.read_text()).get("seconds", {})
            total += sum(v for k, v in seconds.items() if k != "bm3d")
    return max(total * EVAL_SAFETY, 180.0) + 60.0


def train_minutes(total_minutes: float, eval_seconds: float) -> float:
    minutes = total_minutes - (eval_seconds + START_MARGIN_S) / 60
    if minutes < 1:
        raise SystemExit(f"--minutes {total_minutes:g} leaves {minutes:.1f} min of training after the evaluation "
                         f"({eval_seconds / 60:.1f} min) and the start-up margin: give more")
    return minutes


LEG_THREADS = 1     # a leg trains on one core: the 2-core machine keeps the other for the session's own work


def trainer_command(task: str, minutes: float, run: Path, checkpoints: Path, trainer: str,
                    threads: int = LEG_THREADS, init: Path | None = None) -> list[str]:
    """The trainer's command line of a leg; threads 0: the trainer's own default (every core); init: the weights
    it continues (default: the shipped ones)."""
    return shlex.split(trainer) + ["--recipe", task, "--init", str(init or checkpoint_file(checkpoints, task)),
                                   "--schedule", "time", "--minutes", f"{minutes:.2f}", "--out", str(run),
                                   "--no-progress"] + (["--threads", str(threads)] if threads else [])


def cumulative_lr(records: list[dict]) -> float:
    """Sum of the learning rate over the leg's iterations, from the log lines (each covers the iterations since
    the previous one): how far the leg moved the weights, comparable across legs of any length. The trainer's
    own running sum (`cum_lr`, exact per iteration) is used when its log has one."""
    logged = [r["cum_lr"] for r in records if "cum_lr" in r]
    if logged:
        return float(max(logged))
    total, last = 0.0, 0
    for r in records:
        if "lr" in r and "iter" in r:
            total += r["lr"] * (r["iter"] - last)
            last = r["iter"]
    return total


def mask_trace(records: list[dict]) -> list[dict]:
    """The trainer's DFR mask statistics at each validation of a leg (its `mask` log events), cut to what the
    card plots: the leg's cumulative lr and, per block, the 99th percentile of M_sr and the coverage at t."""
    return [{"cum_lr": float(f"{r.get('cum_lr', 0.0):.4g}"),
             "blocks": {name: {"p99": b["p99"], "coverage": b["coverage"], "t": b["t"]}
                        for name, b in r["blocks"].items()}}
            for r in records if r.get("event") == "mask"]


ALIGNMENT_SIDE = 256      # px: the validation photos' centre crops, as the trainer validates (val_size)


def validation_photos(task: str, side: int = ALIGNMENT_SIDE) -> list:
    """The validation split's photos as side px centre crops, downscaled first as the task's recipe trains
    (max_side); [] where no validation split is found."""
    from drcnet.data.datasets import centre_crop, read_photo, split_images
    from drcnet.train.recipe import load_recipe

    try:
        paths = sorted(split_images("val"))
    except (FileNotFoundError, OSError):
        return []
    max_side = load_recipe(task).train.get("max_side")
    return [centre_crop(read_photo(p, max_side), side) for p in paths]


def leg_alignment(task: str, before: Path, after: Path, photos: list) -> dict:
    """Per block ("stage1.level0" ...), the mean ROC-AUC of M_sr against the true degradation map over `photos`
    (each degraded as drcnet.eval.alignment.alignment_table does: heavy rain, a 21 px blur, noise of varying
    sigma), for the weights the leg started from and the candidate. 0.5 is chance, below it M_sr points away."""
    from drcnet.eval.alignment import alignment_table
    from drcnet.model.checkpoint import load_checkpoint
    from drcnet.serve.engine import Restorer

    if not photos:
        return {"photos": "no validation photos found"}
    h, w = photos[0].shape[:2]
    out = {"photos": f"{len(photos)} validation photos, {w}x{h} px centre crops"}
    for label, weights in (("before", before), ("after", after)):
        model, meta = load_checkpoint(weights)
        table = alignment_table(task, Restorer(model, device="cpu", precision="fp32", meta=meta), photos)
        out[label] = {f"stage{s}.level{lv}": round(a.auc, 3) for (s, lv), a in sorted(table.items())}
    return out


def load_legs(task: str, checkpoints: Path) -> list[dict]:
    path = checkpoint_file(checkpoints, task, "legs")
    return json.loads(path.read_text()) if path.is_file() else []


def finish_leg(task: str, run: Path, checkpoints: Path, minutes: float | None, hardware: str, candidates: Path,
               evaluations: dict | None = None, max_side: int = release.CARD_MAX_SIDE, log=log,
               guard=None, photos: list | None = None, chosen: str | None = None, init: Path | None = None) -> dict:
    """Candidate, decision, promotion if it ships, and the leg appended to legs.json and the card. minutes:
    the leg's training time (None: the wall time the weights' metadata records). guard: a context in which
    the files of checkpoints/ are written (the relay's Stop defers signals there). photos: clean photos for the
    mask's alignment before and after (None: the validation photos). chosen: why --task auto picked the task.
    init: the weights the leg continued when they were not the shipped ones (recorded in the leg)."""
    from drcnet.model.checkpoint import read_metadata

    start = time.monotonic()
    weights = checkpoint_file(run, "best")
    if not weights.is_file():
        weights = checkpoint_file(run, "last")
    if minutes is None:
        minutes = float(read_metadata(weights).get("training", {}).get("wall_time_s") or 0) / 60
    folder = candidates / f"{task}-{run.name}"
    decision = release.make_candidate(task, weights, folder, checkpoints, max_side,
                                      release.validation_curve(run), source=str(run), evaluations=evaluations,
                                      log=log)
    alignment = leg_alignment(task, checkpoint_file(checkpoints, task), weights,
                              validation_photos(task) if photos is None else photos)
    with guard or contextlib.nullcontext():
        return record_leg(task, run, folder, checkpoints, minutes, hardware, decision, time.monotonic() - start, log,
                          alignment, chosen, init)


def record_leg(task, run, folder, checkpoints, minutes, hardware, decision, eval_seconds, log=log,
               alignment: dict | None = None, chosen: str | None = None, init: Path | None = None) -> dict:
    if decision["ship"]:
        for path in release.promote(task, folder, checkpoints):
            log(f"shipped {path}")
    records = read_jsonl(run / "log.jsonl")
    steps = [r for r in records if "iter" in r and "loss" in r]
    leg = {"date": time.strftime("%Y-%m-%d %H:%M"), "task": task, "run": str(run), "hardware": hardware,
           "minutes": round(minutes, 1), "iterations": steps[-1]["iter"] if steps else 0,
           "cumulative_lr": float(f"{cumulative_lr(records):.3g}"), "eval_seconds": round(eval_seconds),
           **{k: decision[k] for k in ("val_before", "val_after", "test_before", "test_after", "test_settings",
                                       "gate", "ship", "reasons", "grid_local_max", "real_photos")}}
    leg["mask"] = mask_trace(records)
    leg["alignment"] = alignment or {}
    leg["recipe"] = run_recipe(run, task)
    if chosen:
        leg["chosen"] = chosen
    if init:
        leg["init"] = str(init)
    legs = load_legs(task, checkpoints) + [leg]
    leg.update(pace(task, leg, legs[:-1], folder))
    (checkpoint_file(checkpoints, task, "legs")).write_text(json.dumps(legs, indent=1) + "\n")
    release.write_legs_section(checkpoint_file(checkpoints, task, "card"), legs)
    log(f"leg recorded in {checkpoint_file(checkpoints, task, 'legs')} and the card: {release.describe(decision)}")
    return leg


def run_recipe(run: Path, task: str) -> dict:
    """The recipe's [train] settings as the run used them (its config.json, flags given over the recipe
    included), plus every release.LEVERS setting it changed from the trainer's default: what choose_task compares with
    the recipe of its day. A setting the run does not record is left out, so such a leg matches no recipe."""
    from dataclasses import fields

    from drcnet.train.config import TrainConfig
    from drcnet.train.recipe import load_recipe

    path = run / "config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    recipe = load_recipe(task).train
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    changed = {k: config[k] for k in release.LEVERS if k not in recipe and k in config and config[k] != defaults.get(k)}
    return {**{k: config[k] for k in recipe if k in config}, **changed}


def worst_gap(task: str, folder: Path) -> float | None:
    """The recipe's worst target gap (dB, negative: short) of the `<task>.test.json` in folder."""
    from drcnet.train.recipe import load_recipe

    try:
        return load_recipe(task).worst_gap(json.loads(checkpoint_file(folder, task, "test").read_text()))
    except (OSError, KeyError):       # no test file, or one without the recipe's settings
        return None


def pixels_per_iteration(leg: dict, like: dict) -> int:
    """batch x patch^2 of a leg's recipe (a leg recorded without one: taken as `like`'s)."""
    recipe = {**(like.get("recipe") or {}), **(leg.get("recipe") or {})}
    return recipe.get("batch", 1) * recipe.get("patch", 1) ** 2


def pace(task: str, leg: dict, earlier: list[dict], folder: Path) -> dict:
    """Iterations per minute; whether the leg ran at under half the fastest rate its task has recorded (it
    shared the CPU), rates compared in pixels per minute (a leg on 176 px patches runs half the iterations of
    one on 128 px patches at the same speed); the recipe's worst target gap after the leg and the hours of legs
    like this one that the measured test gain per hour predicts to close it (None when the leg gained nothing)."""
    rate = leg["iterations"] / leg["minutes"] if leg.get("minutes") else 0.0
    pixels = pixels_per_iteration(leg, leg)
    best = max([rate] + [(e.get("iterations_per_minute") or 0.0) * pixels_per_iteration(e, leg) / pixels
                         for e in earlier])
    gap = worst_gap(task, folder)
    gain_per_hour = (leg["test_after"] - leg["test_before"]) / (leg["minutes"] / 60) if leg.get("minutes") else 0.0
    hours = None if gap is None or gap >= 0 or gain_per_hour <= 0 else round(-gap / gain_per_hour, 1)
    return {"iterations_per_minute": round(rate, 1), "slow": bool(best and rate < best / 2),
            "goal_gap_db": None if gap is None else round(gap, 2), "hours_to_goal": hours}


PLATEAU_DB_PER_HOUR = 0.05   # validation gain per training hour under which a recipe has stopped buying anything
WINDOW = 2                   # legs a rate is pooled over: one leg slowed by a shared CPU does not decide alone
# Legs recorded before legs stored their recipe (issue 38) are matched on their loss alone, the one [train]
# setting a recipe had changed by then (git log drcnet/recipes): each date is the task's first leg with L1,
# before it the task trained with L1 + Intra-CR. Deblur has always trained with L1.
L1_SINCE = {"denoise": "2026-12-06 04:02", "derain": "2026-12-07 00:08"}


def under_recipe(leg: dict, train: dict) -> bool:
    """Whether the leg trained with the recipe's [train] table as it is now, from the shipped weights (a leg that
    continued other weights gained over the shipped ones what the leg before it gained too)."""
    if leg.get("init"):
        return False
    if "recipe" in leg:
        return leg["recipe"] == train
    legacy_loss = "l1" if leg.get("date", "") >= L1_SINCE.get(leg.get("task"), "") else "intra-cr"
    return legacy_loss == train.get("loss")


def current_legs(legs: list[dict], train: dict) -> tuple:
    """The last WINDOW of the legs trained with the recipe's [train] table as it is now."""
    return tuple(leg for leg in legs if under_recipe(leg, train))[-WINDOW:]


@dataclass(frozen=True)
class Prospect:
    """What the records say the next leg of a task buys."""
    task: str
    gap: float | None          # the shipped weights' worst target gap, dB (negative: short; None: no scores)
    legs: tuple                # the last WINDOW legs trained with the current recipe, oldest first

    @property
    def rate(self) -> float | None:
        """Validation dB per training hour over self.legs; None when there is none."""
        if not self.legs:
            return None
        hours = sum(leg["minutes"] for leg in self.legs) / 60
        return sum(leg["val_after"] - leg["val_before"] for leg in self.legs) / hours if hours else 0.0

    @property
    def plateaued(self) -> bool:
        """The recipe has stopped paying: under PLATEAU_DB_PER_HOUR, or its last WINDOW legs all refused."""
        unshipped = len(self.legs) == WINDOW and not any(leg["ship"] for leg in self.legs)
        return self.rate is not None and (self.rate < PLATEAU_DB_PER_HOUR or unshipped)

    def rank(self) -> tuple:
        """Sort key, best first: plateaued last, then met goals; unmeasured before measured, measured by rate;
        then the task furthest short (no scores: first), then the name, so ties always go the same way."""
        met = self.gap is not None and self.gap >= 0
        gap = -math.inf if self.gap is None else self.gap
        return (self.plateaued, met, self.rate is not None, -(self.rate or 0.0), gap, self.task)

    def describe(self) -> str:
        goal = ("no test scores" if self.gap is None else
                f"targets met (+{self.gap:.2f} dB)" if self.gap >= 0 else f"{-self.gap:.2f} dB short of its targets")
        if self.rate is None:
            return f"{self.task}: no leg under its current recipe yet, worth measuring; {goal}"
        minutes = sum(leg["minutes"] for leg in self.legs)
        state = "plateaued, " if self.plateaued else ""
        return (f"{self.task}: {state}{self.rate:+.2f} dB/h on validation over its last {len(self.legs)} "
                f"leg(s) under its current recipe ({minutes:.0f} min); {goal}")


def choose_task(legs_by_task: dict[str, list[dict]], recipes: dict, gaps: dict[str, float | None]) -> tuple[str, str]:
    """The task whose next leg is expected to buy the most validation dB per CPU minute, and why (one line with
    every task's numbers). legs_by_task: each task's legs.json records; recipes: task -> Recipe (its [train]
    table is the current recipe); gaps: the shipped weights' worst target gap per task."""
    prospects = sorted((Prospect(task, gaps.get(task), current_legs(legs_by_task.get(task, []), recipe.train))
                        for task, recipe in recipes.items()), key=Prospect.rank)
    best, rest = prospects[0], prospects[1:]
    return best.task, best.describe() + "".join(f" | then {p.describe()}" for p in rest)


def auto_task(checkpoints: Path, tasks=TASKS) -> tuple[str, str]:
    """choose_task on the legs and the shipped test scores in checkpoints/ (files only: no training)."""
    from drcnet.train.recipe import load_recipe

    return choose_task({t: load_legs(t, checkpoints) for t in tasks}, {t: load_recipe(t) for t in tasks},
                       {t: worst_gap(t, checkpoints) for t in tasks})


class Stop:
    """SIGTERM / SIGINT: while the trainer runs, forward SIGINT to it (it saves) and stop after it; during the
    evaluation, stop at once (nothing is shipped or recorded); while checkpoints/ is written, finish that first."""

    def __init__(self):
        self.requested, self.child, self.writing = False, None, False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self)

    def __call__(self, signum, frame):
        self.requested = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGINT)
        elif self.child is not None and not self.writing:
            raise SystemExit(f"stopped by signal {signum} during the evaluation: nothing shipped or recorded")

    @contextlib.contextmanager
    def deferred(self):
        self.writing = True
        try:
            yield
        finally:
            self.writing = False


def hardware_line(info: dict) -> str:
    threads = f", {info.get('cpus')} cores" if info.get("device") == "cpu" else ""
    return f"{info.get('device')}{' ' + info['cpu'] if info.get('cpu') else ''}{threads}"


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, help="the whole leg, evaluation included, ends within this")
    ap.add_argument("--task", default="auto", choices=["auto", *TASKS],
                    help="auto (default): the task whose next leg buys the most per minute (choose_task)")
    ap.add_argument("--legs-only", type=Path, metavar="RUN", help="record a run trained outside the relay")
    ap.add_argument("--leg-minutes", type=float,
                    help="with --legs-only: the run's training minutes (default: the wall time in its weights)")
    ap.add_argument("--checkpoints", type=Path, default=SHIPPED)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "relay")
    ap.add_argument("--candidates", type=Path, default=release.CANDIDATES)
    ap.add_argument("--max-side", type=int, default=release.CARD_MAX_SIDE)
    ap.add_argument("--trainer", default=f"{shlex.quote(sys.executable)} -m drcnet.train",
                    help="the trainer's command, with any option of its own (e.g. '... -m drcnet.train --patch 176')")
    ap.add_argument("--threads", type=int, default=LEG_THREADS,
                    help=f"the trainer's threads (default {LEG_THREADS}: a core to itself, the other for the "
                         "session's work; 0: the trainer's default, every core)")
    ap.add_argument("--init", type=Path, help="continue these weights, not the shipped ones (e.g. an unshipped "
                    "leg's candidate); the leg is still judged against the shipped weights")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    hardware = hardware_line(machine())
    if args.legs_only:
        if args.task == "auto":
            ap.error("--legs-only needs --task")
        return finish_leg(args.task, args.legs_only, args.checkpoints, args.leg_minutes, hardware,
                          args.candidates, max_side=args.max_side)
    if not args.minutes:
        ap.error("--minutes is required (or --legs-only RUN)")
    task, chosen = (args.task, None) if args.task != "auto" else auto_task(args.checkpoints)
    if chosen:
        log(f"relay chooses {chosen}")
    minutes = train_minutes(args.minutes, eval_estimate(task, args.checkpoints))
    run = args.runs / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    log(f"relay leg: {task} for {minutes:.1f} of {args.minutes:g} min into {run}")
    stop = Stop()
    t_train = time.monotonic()
    code, _ = run_logged(trainer_command(task, minutes, run, args.checkpoints, args.trainer, args.threads, args.init),
                         timeout=None,
                         on_start=lambda proc: setattr(stop, "child", proc))
    if stop.requested:
        log(f"stopped: the trainer saved into {run}; record it with "
            f"`python scripts/relay.py --legs-only {run} --task {task}`")
        return None
    if code != 0 and not (checkpoint_file(run, "best")).is_file():
        raise SystemExit(f"the trainer failed (exit {code}) and left no weights in {run}")
    leg = finish_leg(task, run, args.checkpoints, (time.monotonic() - t_train) / 60, hardware, args.candidates,
                     max_side=args.max_side, guard=stop.deferred(), chosen=chosen, init=args.init)
    log(f"leg done in {(time.monotonic() - t0) / 60:.1f} of {args.minutes:g} min")
    return leg


if __name__ == "__main__":
    main()
