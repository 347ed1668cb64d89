"""Ship a trained run as checkpoints/<task>.safetensors with its model card checkpoints/<task>.md.

    python scripts/ship_checkpoint.py --task denoise --run runs/denoise-lite

Evaluates the run's best weights on the validation and test sets with drcnet.evaluate (same protocol as
`python -m drcnet.evaluate`), times a 512x512 restoration on this machine, writes the measured numbers into the
checkpoint's metadata and the model card, and copies the weights. Every number in the card comes from here.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drcnet.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from drcnet.data import split_images  # noqa: E402
from drcnet.engine import Restorer  # noqa: E402
from drcnet.baselines import BASELINES  # noqa: E402
from drcnet.evaluate import DEFAULT_MAX_SIDE, GRID_BOUND, _jsonable, evaluate, markdown_table  # noqa: E402
from drcnet.model import count_parameters  # noqa: E402

TARGETS = {     # round two (issue 12); every checkpoint must also pass the grid-artifact gate
    "denoise": "test set: >= 1.0 dB above non-local means (true sigma) at sigma 25 and 50, at least level with it "
               "at sigma 15",
    "derain": "test set, Y channel: >= 5 dB above the rainy input on light rain and >= 9 dB on heavy, ahead of the "
              "5x5 median filter on every test image",
    "deblur": "test set: >= 1.5 dB above the blurred input on the 13 and 19 px kernels, never below it on any "
              "kernel",
}


class GridArtifactError(SystemExit):
    """The gate: a checkpoint whose outputs carry a grid is not shipped."""


def check_grid(results: dict, source) -> float:
    worst = results["grid_max"]["drcnet"]
    if worst > GRID_BOUND:
        raise GridArtifactError(f"refusing to ship {source}: its worst test image has a grid-artifact ratio of "
                                f"{worst:.2f} (bound {GRID_BOUND}; drcnet.evaluate.grid_artifact_ratio)")
    return worst


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_512(restorer: Restorer, tile: int, repeats: int = 5) -> float:
    """Median seconds for one 512x512 image; tile=0 runs it whole (as the app does up to 512 px)."""
    rng = np.random.default_rng(0)
    image = rng.random((512, 512, 3), dtype=np.float32)
    restorer.restore(image, tile=tile)                        # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        restorer.restore(image, tile=tile)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def validation_curve(run: Path) -> list[tuple[int, float]]:
    log = run / "log.jsonl"
    points = []
    for line in log.read_text().splitlines() if log.is_file() else []:
        rec = json.loads(line)
        if "val_psnr" in rec:
            points.append((rec["iter"], rec["val_psnr"]))
    return points


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, choices=["denoise", "derain", "deblur"])
    ap.add_argument("--run", type=Path, required=True, help="the training run directory")
    ap.add_argument("--weights", default="best.safetensors", help="file in the run to ship")
    ap.add_argument("--sets", nargs="+", default=["val", "test"])
    ap.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE)
    ap.add_argument("--out", type=Path, default=ROOT / "checkpoints")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the evaluation JSON files already in --out (re-time and rewrite the card only)")
    ap.add_argument("--previous", type=Path, default=None,
                    help="the checkpoint this one replaces, scored beside it on the test set (default: the one in "
                         "--out, if any)")
    ap.add_argument("--bm3d-settings", nargs="*", default=["sigma25"],
                    help="denoise: BM3D (tens of seconds an image on a CPU) runs only at these settings, on the "
                         "test set, as a separate table; the main tables use the other baselines")
    args = ap.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    source = args.run / args.weights
    model, meta = load_checkpoint(source)
    restorer = Restorer(model, meta=meta)
    results = {}
    cheap = [name for name in BASELINES[args.task] if name != "bm3d"]
    runs = [(split, split, None, cheap) for split in args.sets]
    if args.task == "denoise" and "bm3d" in BASELINES["denoise"] and args.bm3d_settings:
        runs.append(("test, with BM3D", "test", args.bm3d_settings, ["nlm", "bm3d"]))
    for label, split, settings, baselines in runs:
        saved = args.out / f"{args.task}.{label.replace(', with ', '-').replace(' ', '')}.json"
        if args.reuse and saved.is_file():
            results[label] = json.loads(saved.read_text())
            continue
        print(f"evaluating {label} ...", flush=True)
        results[label] = evaluate(args.task, restorer.restore, split_images(split), settings=settings,
                                  baselines=baselines, max_side=args.max_side, log=lambda line: print(line, flush=True))
        saved.write_text(json.dumps(_jsonable(results[label]), indent=1))
    if "test" in results:
        check_grid(results["test"], source)
    previous = args.previous or (args.out / f"{args.task}.safetensors")
    saved = args.out / f"{args.task}.previous.json"
    if args.reuse and saved.is_file():        # the checkpoint in --out may already be this one
        results["previous"] = json.loads(saved.read_text())
    elif previous.is_file() and "test" in results:
        print(f"scoring the previous checkpoint {previous.name} on the test set ...", flush=True)
        old = Restorer.from_checkpoint(previous)
        results["previous"] = evaluate(args.task, old.restore, split_images("test"), baselines=[],
                                       max_side=args.max_side)
        saved.write_text(json.dumps(_jsonable(results["previous"]), indent=1))
    latency = {"whole": time_512(restorer, tile=0), "tiles_256": time_512(restorer, tile=256)}
    device, precision = str(restorer.device), restorer.precision

    metrics = {split: res["mean"] for split, res in results.items() if split != "previous"}
    metrics["grid_max_test"] = results["test"]["grid_max"]["drcnet"] if "test" in results else None
    metrics["latency_512_s"] = {**{k: round(v, 3) for k, v in latency.items()}, "device": device, "precision": precision,
                                "cpu": cpu_name()}
    target = args.out / f"{args.task}.safetensors"
    save_checkpoint(target, model, task=args.task, preset=meta.get("preset", ""), training=meta["training"],
                    metrics=_jsonable(metrics), dtype="float16")
    write_card(args, meta, model, results, latency, device, precision, validation_curve(args.run), target)
    print(f"wrote {target} and {args.out / (args.task + '.md')}")


def write_card(args, meta, model, results, latency, device, precision, curve, target):
    tr = meta["training"]
    lines = [
        f"# DRCNet {args.task} checkpoint (`{target.name}`)",
        "",
        f"Trained by this project's own trainer (loss: {tr.get('loss', '?')}). All numbers below were measured by "
        f"`python scripts/ship_checkpoint.py --task {args.task} --run {args.run} --max-side {args.max_side}` (which runs the evaluation of "
        f"`python -m drcnet.evaluate --task {args.task} --checkpoint checkpoints/{target.name} --set val|test`).",
        "",
        "## Model and training",
        "",
        "| | |",
        "|---|---|",
        f"| preset | `{meta.get('preset')}` ({count_parameters(model):,} parameters, t = {model.cfg.t}, "
        f"delta = {model.cfg.delta}, region statistics `{model.cfg.region_stats}`) |",
        f"| data | {tr.get('data', '?')} |",
        f"| degradations | {degradation_ranges(args.task)} |",
        f"| iterations | {tr.get('iterations', '?')} of a {tr.get('planned_iterations', '?')}-iteration "
        f"cosine schedule |",
        f"| batch x patch | {tr.get('batch', '?')} x {tr.get('patch', '?')}px |",
        f"| loss | {tr.get('loss', '?')}, alpha = {tr.get('alpha', '?')}, lr {tr.get('lr', '?')} (Adam, cosine) |",
        f"| warm start | {('from ' + tr['init']) if tr.get('init') else 'none recorded (see the assessment)'} |",
        f"| hardware | {tr.get('hardware', '?')} |",
        f"| wall time | {fmt_seconds(tr.get('wall_time_s'))} |",
        f"| final validation PSNR | {fmt_db(tr.get('val_psnr'))} |",
        f"| restore 512x512 | {latency['whole']:.2f} s whole (as the app runs it), {latency['tiles_256']:.2f} s in "
        f"256 px tiles (the engine's default); median of 5 on {cpu_name()}, {device}, {precision} |",
        "",
        "Reproduce:",
        "",
        "```bash",
        "python scripts/fetch_data.py",
        reproducible_command(tr.get("command", "?")),
        f"python scripts/ship_checkpoint.py --task {args.task} --run {args.run} --max-side {args.max_side}",
        "```",
        "",
    ]
    if curve:
        lines += ["Validation PSNR during training (fixed validation crops): " +
                  ", ".join(f"{it}: {p:.2f} dB" for it, p in curve), ""]
    lines += ["## Target", "", TARGETS[args.task], ""]
    notes = args.out / f"{args.task}.notes.md"
    if notes.is_file():                       # the hand-written assessment of this run, kept across re-runs
        lines += [notes.read_text().strip(), ""]
    if "previous" in results:
        lines += ["## This round against the previous checkpoint (test set, same protocol)", "",
                  previous_table(results["test"], results["previous"]), ""]
    lines += ["## Evaluation", ""]
    for split, res in results.items():
        if split == "previous":
            continue
        lines += [f"### {split} (centre crops of at most {args.max_side} px)", "", markdown_table(res), ""]
    (args.out / f"{args.task}.md").write_text("\n".join(lines) + "\n")


def previous_table(new: dict, old: dict) -> str:
    """PSNR / SSIM per setting: the input, the previous checkpoint, this one; and each one's worst grid ratio."""
    settings = new["settings"]
    lines = ["| PSNR dB / SSIM | " + " | ".join(settings) + " | worst grid ratio |", "|---|" + "---|" * (len(settings) + 1)]
    for label, res, method in (("input", new, "input"), ("previous", old, "drcnet"), ("this checkpoint", new, "drcnet")):
        cells = [f"{res['mean'][s][method]['psnr']:.2f} / {res['mean'][s][method]['ssim']:.4f}" for s in settings]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {res['grid_max'][method]:.2f} |")
    return "\n".join(lines)


def reproducible_command(command: str) -> str:
    """Runs started before train.py recorded `python -m drcnet.train` carry the script's absolute path."""
    first, _, rest = command.partition(" ")
    return f"python -m drcnet.train {rest}" if first.endswith("drcnet/train.py") else command


def degradation_ranges(task: str) -> str:
    return {
        "denoise": "training: Gaussian sigma ~ U[0, 55]/255, one blind model; evaluation: sigma 15, 25, 50",
        "derain": "training: random light and heavy synthetic streak layers (drcnet.degrade.RAIN_PRESETS), screen "
                  "blending; evaluation: the light and heavy presets, PSNR/SSIM on Y",
        "deblur": "training: random camera-trajectory kernels 13-31 px, then noise 0.01 and 8-bit rounding; "
                  "evaluation: four fixed kernels (13, 19, 25, 31 px)",
    }[task]


def fmt_db(v) -> str:
    return f"{v:.2f} dB" if isinstance(v, (int, float)) else "?"


def fmt_seconds(s) -> str:
    try:
        s = float(s)
    except (TypeError, ValueError):
        return str(s)
    return f"{s / 3600:.2f} h ({s:.0f} s)"


if __name__ == "__main__":
    main()
