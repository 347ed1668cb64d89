#!/usr/bin/env python
"""The paper's ablations, replicated small: Table 4 (the DFR block's branches) and Table 5 (Intra-CR against L1
and Extra-CR), as one resumable command. Denoising with the project's synthetic blind noise.

    python scripts/ablate.py                                    # the study on the CPU: tiny preset, 8 min a run
    python scripts/ablate.py --repeat-seed 1                    # and the two closest contrasts with a 2nd seed
    python scripts/ablate.py --dry-run                          # print the runs and their commands
    python scripts/ablate.py --device cuda --preset lite --batch 32 --patch 256 --minutes 2 \
        --data datapack/train --val-data datapack/val --no-eval  # a GPU burst (evaluate later on the CPU)
    python scripts/ablate.py --ship DFR-l1 base                 # -> checkpoints/denoise-DFR-l1.safetensors, ...

What it does, in this order (docs/ablation.md):
1. fixes one iteration count for every run: --iters, or --minutes measured on the most expensive run (DFR with
   Intra-CR): a calibration run of `python -m drcnet.train --minutes M --stop-at 1` times the warm-up steps and
   fits the cosine schedule to M minutes, then stops. Every run then gets that count, so all runs share the
   data stream (seeded by --seed), the schedule and the number of updates, and none runs past M minutes;
2. trains the runs one after another (each `python -m drcnet.train` with all cores; side-by-side runs would
   only share the same two cores and time each other), into runs/ablation/<name>. A finished run is skipped,
   an interrupted one resumed (--resume), so the command can be run again until it is done;
3. evaluates each run's best weights on the test set at sigma 15/25/50 with drcnet.evaluate.evaluate (the
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drcnet.jobs import log, machine, run_logged  # noqa: E402

TASK = "denoise"
SIGMAS = ("sigma15", "sigma25", "sigma50")       # drcnet.degrade.eval_settings("denoise")
MAX_SIDE = 256                                   # the evaluation protocol of the shipped cards

# name -> (Table 4 variant, loss). DFR with Intra-CR is the paper's model and both tables' reference row; it
# comes first because it is the most expensive run (all branches, three VGG negatives): the budget is fitted
# to it, so every other run ends sooner.
RUNS: dict[str, tuple[str, str]] = {
    "DFR": ("DFR", "intra-cr"),
    "base": ("base", "intra-cr"),
    "base+SF": ("base+SF", "intra-cr"),
    "base+EA": ("base+EA", "intra-cr"),
    "base+SF+identity": ("base+SF+identity", "intra-cr"),
    "base+SF+EA": ("base+SF+EA", "intra-cr"),
    "DFR-l1": ("DFR", "l1"),
    "DFR-extra-cr": ("DFR", "extra-cr"),
}
TABLE4 = ["base", "base+SF", "base+EA", "base+SF+identity", "base+SF+EA", "DFR"]
TABLE5 = ["DFR-l1", "DFR-extra-cr", "DFR"]
REFERENCE = "DFR"

# The paper's claims as (worse, better) pairs: (1) Table 4, each DFR branch adds PSNR; (2) Table 5 / Fig. 5b,
# Intra-CR beats L1 alone and Extra-CR. The identity contrast is in Table 4 but not in the claimed chain.
CONTRASTS: list[tuple[str, str]] = [
    ("base", "base+SF"), ("base", "base+EA"), ("base+SF", "base+SF+EA"), ("base+EA", "base+SF+EA"),
    ("base+SF+EA", "DFR"), ("base+SF", "base+SF+identity"), ("DFR-l1", "DFR"), ("DFR-extra-cr", "DFR"),
]
CLAIMED = set(CONTRASTS) - {("base+SF", "base+SF+identity")}
# Before any result exists, the two contrasts expected to be closest: the identity branch is one 1x1 conv per
# block (18.6 -> 18.9 M parameters in the paper), and Extra-CR differs from Intra-CR only in its negatives.
DEFAULT_CLOSEST = [("base+SF+EA", "DFR"), ("DFR-extra-cr", "DFR")]

# The paper's numbers as far as the project's documents hold them (docs/design.md: Table 4's parameter
# counts). Its PSNR/SSIM values are not in those documents: the table leaves a marked
# column to fill from the paper rather than numbers from memory.
PAPER_PARAMS_M = {"base": 12.7, "base+SF": 15.4, "base+SF+identity": 15.8, "base+SF+EA": 18.6, "DFR": 18.9}
PAPER_COLUMN = "paper (to fill from the paper)"


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

def contrast_gaps(results: dict) -> list[tuple[float, tuple[str, str]]]:
    """(|PSNR gap| averaged over the sigmas, contrast) for every contrast whose two runs have test results."""
    gaps = []
    for a, b in CONTRASTS:
        if a in results and b in results:
            gap = sum(results[b][s]["psnr"] - results[a][s]["psnr"] for s in SIGMAS) / len(SIGMAS)
            gaps.append((abs(gap), (a, b)))
    return sorted(gaps)


def closest_contrasts(results: dict | None, n: int = 2) -> list[tuple[str, str]]:
    """The n contrasts with the smallest gap, measured; DEFAULT_CLOSEST while fewer than n can be measured."""
    gaps = contrast_gaps(results or {})
    return [c for _, c in gaps[:n]] if len(gaps) >= n else list(DEFAULT_CLOSEST)


def repeat_name(name: str, seed: int) -> str:
    return f"{name}-seed{seed}"


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
    from drcnet.checkpoint import read_metadata

    try:
        return read_metadata(folder / "last.safetensors")["training"]["iterations"] >= iters
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
    from drcnet.engine import Restorer
    from drcnet.evaluate import _jsonable, evaluate

    folder = args.out / run.name
    weights, cache = folder / "best.safetensors", folder / "test.json"
    if cache.is_file() and cache.stat().st_mtime >= weights.stat().st_mtime:
        return json.loads(cache.read_text())
    restorer = Restorer.from_checkpoint(weights, device=None if args.device == "auto" else args.device)
    results = evaluate(TASK, lambda image: restorer.restore(image), images, baselines=[], max_side=MAX_SIDE)
    results.update(set=str(args.test_data), checkpoint=str(weights))
    cache.write_text(json.dumps(_jsonable(results), indent=1) + "\n")
    return results


def run_record(run: Run, args, evaluation: dict | None) -> dict:
    """What the report needs of one run: its settings as trained (from the checkpoint), scores and curve."""
    from drcnet.checkpoint import load_checkpoint, read_metadata
    from drcnet.model import count_parameters

    folder = args.out / run.name
    model, meta = load_checkpoint(folder / "best.safetensors")
    training = read_metadata(folder / "last.safetensors")["training"]      # the whole run, not the best point
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

def noise_estimate(records: dict, seed: int | None) -> float | None:
    """The largest seed-to-seed PSNR difference (mean over the sigmas) among the repeated runs."""
    diffs = []
    for name, r in records.items():
        twin = records.get(repeat_name(name, seed)) if seed is not None else None
        if twin and "test" in r and "test" in twin:
            diffs.append(abs(sum(twin["test"][s]["psnr"] - r["test"][s]["psnr"] for s in SIGMAS) / len(SIGMAS)))
    return max(diffs) if diffs else None


def verdicts(records: dict, noise: float | None) -> list[dict]:
    """Each contrast: the gain of the 'better' run (paper) over the 'worse' one, and what it says."""
    tests = {n: r["test"] for n, r in records.items() if "test" in r}
    out = []
    for a, b in CONTRASTS:
        if a not in tests or b not in tests:
            continue
        gain = {s: tests[b][s]["psnr"] - tests[a][s]["psnr"] for s in SIGMAS}
        mean = sum(gain.values()) / len(gain)
        if noise is None:
            word = "replicates" if mean > 0 else "reversed"
            word += " (noise unknown: run --repeat-seed)"
        elif abs(mean) <= noise:
            word = "within noise"
        else:
            word = "replicates" if mean > 0 else "reversed"
        out.append({"worse": a, "better": b, "claimed": (a, b) in CLAIMED, "gain_db": gain, "mean_gain_db": mean,
                    "verdict": word})
    return out


def markdown(records: dict, report: dict) -> str:
    cell = lambda r, s: f"{r[s]['psnr']:.2f} / {r[s]['ssim']:.4f}" if r else "-"      # noqa: E731
    head = "| run | variant | loss | seed | iterations | parameters | paper parameters (M) | " + \
        " | ".join(f"{s} PSNR / SSIM" for s in SIGMAS) + f" | {PAPER_COLUMN} |"
    lines = [f"Denoising, test set ({report['test_set']}, centre crops of at most {MAX_SIDE} px), PSNR (dB) / "
             f"SSIM on RGB; preset {report['preset']}, {report['iters']} iterations a run.", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    some = next((r for r in records.values() if "input" in r), None)
    if some:
        lines.append("| noisy input | | | | | | | " + " | ".join(cell(some["input"], s) for s in SIGMAS) + " | |")
    for name, r in records.items():
        paper = PAPER_PARAMS_M.get(r["variant"], "not in the spec") if r["loss"] == "intra-cr" else ""
        lines.append(f"| {name} | {r['variant']} | {r['loss']} | {r['seed']} | {r['iterations']} | "
                     f"{r['parameters']:,} | {paper} | " + " | ".join(cell(r.get("test"), s) for s in SIGMAS) +
                     " | (to fill) |")
    noise = report["noise_db"]
    lines += ["", "Seed-to-seed noise (the largest difference of a repeated run, mean over the sigmas): " +
              (f"{noise:.3f} dB" if noise is not None else "not measured (run with --repeat-seed)"), "",
              "| contrast (paper: right > left) | claimed | " + " | ".join(f"gain {s} (dB)" for s in SIGMAS) +
              " | mean gain (dB) | verdict |", "|---|---|" + "---|" * len(SIGMAS) + "---|---|"]
    for v in report["verdicts"]:
        lines.append(f"| {v['worse']} -> {v['better']} | {'yes' if v['claimed'] else 'no'} | " +
                     " | ".join(f"{v['gain_db'][s]:+.2f}" for s in SIGMAS) +
                     f" | {v['mean_gain_db']:+.3f} | {v['verdict']} |")
    return "\n".join(lines) + "\n"


def plot_curves(records: dict, path: Path) -> None:
    """Validation PSNR against iteration: Table 4's variants on the left, Table 5's losses on the right."""
    from drcnet.demo.figures import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, group, title in ((axes[0], TABLE4, "Table 4: DFR branches (Intra-CR)"),
                             (axes[1], TABLE5, "Table 5: losses (DFR)")):
        for name, r in records.items():
            base = name.rsplit("-seed", 1)[0] if name not in RUNS else name
            if base in group and r["curve"]:
                xs, ys = zip(*r["curve"])
                ax.plot(xs, ys, marker=".", label=name, linestyle="--" if name != base else "-")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("validation PSNR (dB, sigma 25)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(records: dict, args, iters: int) -> dict:
    noise = noise_estimate(records, args.repeat_seed)
    report = {"task": TASK, "preset": args.preset, "iters": iters, "test_set": str(args.test_data),
              "max_side": MAX_SIDE, "noise_db": noise, "verdicts": verdicts(records, noise),
              "closest": closest_contrasts({n: r["test"] for n, r in records.items() if "test" in r}),
              "runs": records}
    (args.out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(records, report))
    plot_curves(records, args.out / "curves.png")
    log(markdown(records, report))
    log(f"wrote {args.out / 'results.json'}, results.md, curves.png")
    return report


# ---------------------------------------------------------------------------------------------------- ship

def ship(names: list[str], args) -> list[Path]:
    """The runs' best weights as float16 checkpoints/denoise-<name>.safetensors: the app's Compare tab lists
    them beside the main checkpoint (drcnet.demo.ablation_paths). Test scores go into the metadata, and a run
    whose outputs carry a grid is refused (the gate of drcnet.release)."""
    from drcnet.checkpoint import load_checkpoint, save_checkpoint
    from drcnet.release import check_grid

    shipped = []
    for name in names:
        folder = args.out / name
        model, meta = load_checkpoint(folder / "best.safetensors")
        metrics = dict(meta.get("metrics") or {})
        cache = folder / "test.json"
        if cache.is_file():
            results = json.loads(cache.read_text())
            check_grid(results, folder)
            metrics["test"] = {s: results["mean"][s]["drcnet"] for s in SIGMAS}
        path = args.checkpoints / f"{TASK}-{name}.safetensors"
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
        from drcnet.data import split_images
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
