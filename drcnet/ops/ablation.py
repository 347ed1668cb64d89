"""The paper's ablations, replicated small: Table 4 (the DFR block's branches) and Table 5 (Intra-CR against L1
and Extra-CR), as one resumable command (scripts/ablate.py, whose docstring shows its uses; the report is
drcnet/ops/ablation_report.py). Denoising with the project's synthetic blind noise.

What it does, in this order (docs/ablation.md):
1. fixes one iteration count for every run: --iters, or --minutes measured on the most expensive run (DFR with
   Intra-CR): a calibration run of `python -m drcnet.train --minutes M --stop-at 1` times the warm-up steps and
   fits the cosine schedule to M minutes, then stops. Every run then gets that count, so all runs share the
   data stream (seeded by --seed), the schedule and the number of updates, and none runs past M minutes;
2. trains the runs one after another (each `python -m drcnet.train` with all cores; side-by-side runs would
   only share the same two cores and time each other), into runs/ablation/<name>. A finished run is skipped,
   an interrupted one resumed (--resume), so the command can be run again until it is done;
3. evaluates each run's best weights on the test set at sigma 15/25/50 with drcnet.eval.evaluate.evaluate (the
   protocol of `python -m drcnet.evaluate --task denoise --set test --max-side 256`), cached per run;
4. with --repeat-seed S, reruns the two closest contrasts (smallest PSNR gap) with seed S, to know the noise;
5. writes results.json, results.md (our PSNR/SSIM beside the paper's numbers) and curves.png (validation PSNR
   from each run's log.jsonl) into the study folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from drcnet.core.device import machine
from drcnet.core.paths import REPO as ROOT
from drcnet.core.paths import checkpoint_file
from drcnet.ops.ablation_report import (MAX_SIDE, REFERENCE, RUNS, SIGMAS, TASK, closest_contrasts, repeat_name,
                                        write_report)
from drcnet.ops.jobs import log, run_logged

@dataclass
class Run:
    name: str
    variant: str
    loss: str
    seed: int


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "ablation", help="study folder: one folder a run")
    ap.add_argument("--only", nargs="+", choices=list(RUNS), help="a subset of the runs (default: all)")
    ap.add_argument("--preset", default="tiny", help="model size (tiny on two CPU cores; lite on a GPU)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda: training and evaluation")
    ap.add_argument("--gpu", action="store_true", help="shorthand for --device cuda")
    ap.add_argument("--seed", type=int, default=0, help="seed of every run (data stream and initial weights)")
    ap.add_argument("--repeat-seed", type=int, help="rerun the two closest contrasts with this seed")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=8.0,
                        help="per-run budget, measured on the DFR + Intra-CR run (8 runs + 3-4 repeats: < 2 h)")
    budget.add_argument("--iters", type=int, help="the iteration count of every run (no calibration)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--max-side", type=int, default=1280, help="downscale training photos (decoding 4K is slow)")
    ap.add_argument("--val-points", type=int, default=8, help="validations per run (the curves)")
    ap.add_argument("--val-count", type=int, default=8)
    ap.add_argument("--val-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--data", help="folder of clean training photos (default: the fetched training split)")
    ap.add_argument("--val-data", help="folder of validation photos (default: the fetched validation split)")
    ap.add_argument("--test-data", default="test", help="test, or a folder of clean photos")
    ap.add_argument("--eval", action=argparse.BooleanOptionalAction, default=True,
                    help="evaluate and report (--no-eval on a GPU machine without the test set)")
    ap.add_argument("--extra", default="", help="more arguments for python -m drcnet.train")
    ap.add_argument("--dry-run", action="store_true", help="print the runs and commands, run nothing")
    ap.add_argument("--ship", nargs="+", metavar="NAME",
                    help="only save these runs' best weights as float16 checkpoints/denoise-NAME.safetensors")
    ap.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints", help="where --ship writes")
    args = ap.parse_args(argv)
    if args.gpu:
        args.device = "cuda"
    return args


# ---------------------------------------------------------------------------------------------------- plan

def plan(args, results: dict | None = None) -> list[Run]:
    """The runs of the study: the chosen ones with --seed, then (with --repeat-seed) each run of the two
    closest contrasts once more with the second seed."""
    names = args.only or list(RUNS)
    runs = [Run(n, *RUNS[n], seed=args.seed) for n in RUNS if n in names]
    if args.repeat_seed is not None:
        repeat = []
        for contrast in closest_contrasts(results):
            repeat += [n for n in contrast if n not in repeat]
        runs += [Run(repeat_name(n, args.repeat_seed), *RUNS[n], seed=args.repeat_seed) for n in repeat]
    return runs


# ---------------------------------------------------------------------------------------------------- train

def train_cmd(run: Run, args, out: Path, iters: int | None = None) -> list[str]:
    """python -m drcnet.train for one run; everything but the variant, the loss and (repeats) the seed is the
    same for every run. Without iters (the calibration) no periodic validation: --val-points of a real run."""
    val_every = max(1, iters // args.val_points) if iters else 0
    cmd = [sys.executable, "-m", "drcnet.train", "--task", TASK, "--preset", args.preset, "--variant", run.variant,
           "--loss", run.loss, "--seed", str(run.seed), "--batch", str(args.batch), "--patch", str(args.patch),
           "--max-side", str(args.max_side), "--val-every", str(val_every), "--val-count", str(args.val_count),
           "--val-size", str(args.val_size), "--threads", str(args.threads), "--device", args.device,
           "--save-every", str(max(1, (iters or 100) // 20)), "--log-every", str(max(1, (iters or 100) // 50)),
           "--out", str(out), "--no-progress", "--resume"]
    if iters is not None:
        cmd += ["--iters", str(iters)]
    if args.data:
        cmd += ["--data", str(args.data)]
    if args.val_data:
        cmd += ["--val-data", str(args.val_data)]
    return cmd + args.extra.split()


def calibrate(args) -> int:
    """--iters, or the iteration count that fits the reference run into --minutes on this machine: drcnet.train
    --minutes measures the steps after a warm-up and fits the schedule; --stop-at 1 ends it right there. Kept
    in budget.json, so that a resumed study (and the repeats) use the same count."""
    if args.iters:
        return args.iters
    budget_file = args.out / "budget.json"
    if budget_file.is_file():
        budget = json.loads(budget_file.read_text())
        if budget["minutes"] == args.minutes and budget["preset"] == args.preset:
            return budget["iters"]
    folder = args.out / "_calibration"
    if folder.exists():                          # a calibration is never resumed: start it afresh
        import shutil
        shutil.rmtree(folder)
    cmd = train_cmd(Run(REFERENCE, *RUNS[REFERENCE], seed=args.seed), args, folder)
    cmd += ["--minutes", str(args.minutes), "--stop-at", "1"]
    code, _ = run_logged(cmd, timeout=args.minutes * 60 + 300)
    events = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()] if code == 0 else []
    schedule = next((e for e in events if e.get("event") == "schedule"), None)
    if schedule is None:
        raise SystemExit(f"calibration failed (exit {code}): see {folder}")
    budget = {"iters": schedule["iters"], "step_s": schedule["step_s"], "minutes": args.minutes,
              "preset": args.preset, "machine": machine()}
    budget_file.write_text(json.dumps(budget, indent=1) + "\n")
    log(f"budget: {budget['iters']} iterations a run ({budget['step_s']} s a step, {args.minutes} min)")
    return budget["iters"]


def finished(folder: Path, iters: int) -> bool:
    from drcnet.model.checkpoint import read_metadata

    try:
        return read_metadata(checkpoint_file(folder, "last"))["training"]["iterations"] >= iters
    except (OSError, KeyError, ValueError):
        return False


def train_run(run: Run, args, iters: int) -> None:
    folder = args.out / run.name
    if finished(folder, iters):
        log(f"{run.name}: done ({iters} iterations), skipped")
        return
    cmd = train_cmd(run, args, folder, iters)
    start = time.time()
    # a hang must not stall the study for ever: three times the budget (a day when it is set in iterations)
    code, _ = run_logged(cmd, timeout=86400 if args.iters else args.minutes * 60 * 3 + 300)
    if code != 0 or not finished(folder, iters):
        raise SystemExit(f"{run.name}: training failed (exit {code}); run the command again to resume it")
    log(f"{run.name}: trained in {time.time() - start:.0f} s")


# ---------------------------------------------------------------------------------------------------- evaluate

def evaluate_run(run: Run, args, images) -> dict:
    """Test-set PSNR/SSIM of the run's best weights: {setting: {"drcnet"|"input": {psnr, ssim}}}, cached in the
    run's test.json (recomputed when the weights are newer)."""
    from drcnet.serve.engine import Restorer
    from drcnet.core.files import jsonable
    from drcnet.eval.evaluate import evaluate

    folder = args.out / run.name
    weights, cache = checkpoint_file(folder, "best"), folder / "test.json"
    if cache.is_file() and cache.stat().st_mtime >= weights.stat().st_mtime:
        return json.loads(cache.read_text())
    restorer = Restorer.from_checkpoint(weights, device=None if args.device == "auto" else args.device)
    results = evaluate(TASK, lambda image: restorer.restore(image), images, baselines=[], max_side=MAX_SIDE)
    results.update(set=str(args.test_data), checkpoint=str(weights))
    cache.write_text(json.dumps(jsonable(results), indent=1) + "\n")
    return results


def run_record(run: Run, args, evaluation: dict | None) -> dict:
    """What the report needs of one run: its settings as trained (from the checkpoint), scores and curve."""
    from drcnet.model.checkpoint import load_checkpoint, read_metadata
    from drcnet.model.network import count_parameters

    folder = args.out / run.name
    model, meta = load_checkpoint(checkpoint_file(folder, "best"))
    training = read_metadata(checkpoint_file(folder, "last"))["training"]      # the whole run, not the best point
    curve = [(r["iter"], r["val_psnr"]) for r in map(json.loads, (folder / "log.jsonl").read_text().splitlines())
             if "val_psnr" in r]
    record = {**asdict(run), "iterations": training["iterations"], "planned_iterations":
              training["planned_iterations"], "trained_seed": training["seed"], "batch": training["batch"],
              "patch": training["patch"], "preset": meta["preset"], "parameters": count_parameters(model),
              "wall_time_s": training["wall_time_s"], "hardware": training["hardware"],
              "best_iteration": meta["training"]["iterations"], "curve": curve}
    if evaluation is not None:
        record["test"] = {s: evaluation["mean"][s]["drcnet"] for s in SIGMAS}
        record["input"] = {s: evaluation["mean"][s]["input"] for s in SIGMAS}
    return record


# ---------------------------------------------------------------------------------------------------- report

# ---------------------------------------------------------------------------------------------------- ship

def ship(names: list[str], args) -> list[Path]:
    """The runs' best weights as float16 checkpoints/denoise-<name>.safetensors: the app's Compare tab lists
    them beside the main checkpoint (drcnet.demo.Registry.ablations). Test scores go into the metadata, and a run
    whose outputs carry a grid is refused (the gate of drcnet.ops.release)."""
    from drcnet.model.checkpoint import load_checkpoint, save_checkpoint
    from drcnet.ops.release import check_grid

    shipped = []
    for name in names:
        folder = args.out / name
        model, meta = load_checkpoint(checkpoint_file(folder, "best"))
        metrics = dict(meta.get("metrics") or {})
        cache = folder / "test.json"
        if cache.is_file():
            results = json.loads(cache.read_text())
            check_grid(results, folder)
            metrics["test"] = {s: results["mean"][s]["drcnet"] for s in SIGMAS}
        path = checkpoint_file(args.checkpoints, f"{TASK}-{name}")
        save_checkpoint(path, model, task=TASK, preset=meta.get("preset", ""), training=meta["training"],
                        metrics=metrics, extra={"ablation": name}, dtype="float16")
        log(f"shipped {path} ({path.stat().st_size / 2 ** 20:.1f} MiB)")
        shipped.append(path)
    return shipped


# ---------------------------------------------------------------------------------------------------- main

def main(argv=None) -> dict | None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.ship:
        ship(args.ship, args)
        return None
    if args.dry_run:
        for run in plan(args):       # without --iters, the calibration fixes the count (--iters N below)
            cmd = train_cmd(run, args, args.out / run.name, args.iters)
            log(run.name, ":", " ".join(cmd + ([] if args.iters else ["--iters", "N"])))
        return None
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    iters = calibrate(args)
    images = None
    if args.eval:
        from drcnet.data.datasets import split_images
        images = split_images(args.test_data)

    records: dict[str, dict] = {}

    def do(runs: list[Run]) -> None:
        for run in runs:
            if run.name in records:
                continue
            train_run(run, args, iters)
            records[run.name] = run_record(run, args, evaluate_run(run, args, images) if args.eval else None)

    do(plan(args))
    if args.repeat_seed is not None and args.eval:        # closest by the measured gaps, now that they exist
        do(plan(args, {n: r["test"] for n, r in records.items()}))
    elif args.repeat_seed is not None:
        do(plan(args))
    if not args.eval:
        (args.out / "results.json").write_text(json.dumps({"iters": iters, "runs": records}, indent=1) + "\n")
        return {"iters": iters, "runs": records}
    return write_report(records, args, iters)


if __name__ == "__main__":
    main()
