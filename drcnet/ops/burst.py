"""The GPU burst: one command that uses a short GPU lease for training, a benchmark and the CUDA tests.

    python scripts/gpu_burst.py --out "$OUT"                      # on the lent GPU machine (docs/gpu.md)
    python scripts/gpu_burst.py --out /tmp/b --train-seconds 60 --tasks denoise --preset tiny --patch 32 \
        --batch 2 --no-bench --no-tests                           # the same code path on a CPU (tests/)

A lease is one command of at most 600 s with no second try, so everything here is bounded by one global
deadline (--deadline, default 540 s) whose clock the entry script starts before it imports torch. In order:
1. prints the machine and checks the data pack (drcnet.data.datapack): without one, training is skipped with a clear
   message (the benchmark and tests still run, and the command exits non-zero at the end);
2. trains each task in turn from checkpoints/<task>.safetensors with its recipe (drcnet/recipes/<task>.toml:
   loss, lr, kernels; only patch and batch are the GPU's) on the wall-clock schedule, in its own process and
   its own fresh run folder, under a timeout capped by the deadline; as soon as a task ends its weights are
   copied to --out as float16 <task>.safetensors, before its log is read;
3. measures the device's cost of one training batch and benchmarks inference (engine Restorer, median ms and
   peak memory);
4. runs the tests that need no gradio on the device, inside what is left of the deadline;
5. prints a short table and writes burst.json (every number and the training logs) to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

from drcnet.data.datapack import MissingPackError, check_pack
from drcnet.core.device import machine
from drcnet.core.files import read_jsonl
from drcnet.ops.jobs import ROOT, TIMED_OUT, log, run_logged
from drcnet.core.tasks import TASKS
from drcnet.train.recipe import load_recipe
from drcnet.core.paths import checkpoint_file

# Shares of the training time: deblur is furthest from its target and learns slowest, so it gets the most.
SHARES = {"denoise": 0.3, "derain": 0.25, "deblur": 0.45}
TEST_FILES = ["tests/test_model.py", "tests/test_engine.py", "tests/test_probes.py", "tests/test_device_batches.py",
              "tests/test_checkpoint.py"]
# Seconds kept back from a training child's timeout: its stop (SIGINT, save, SIGKILL after this grace) and the
# copy of its weights must fit before the deadline.
STOP_GRACE = 20.0
AFTER_TRAINING = 75.0   # seconds the benchmark and the tests need at least, kept out of the training budgets


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "outputs/burst")))
    ap.add_argument("--tasks", type=lambda s: [t for t in s.split(",") if t], default=list(TASKS))
    ap.add_argument("--train-seconds", type=float, default=300.0, help="training time of all tasks together")
    ap.add_argument("--deadline", type=float, default=540.0,
                    help="seconds, counted from the start of the interpreter, by which everything has ended")
    ap.add_argument("--preset", default=None, help="model preset (default: the recipe's)")
    ap.add_argument("--patch", type=int, default=256, help="the GPU's patch (the recipe's is a CPU's)")
    ap.add_argument("--batch", type=int, default=32, help="the GPU's batch (the recipe's is a CPU's)")
    ap.add_argument("--val-count", type=int, default=16)
    ap.add_argument("--val-size", type=int, default=256)
    ap.add_argument("--data", default=str(ROOT / "datapack"), help="folder with train/ and val/ photos")
    ap.add_argument("--runs", default=str(ROOT / "runs"), help="each call trains in a fresh <runs>/burst-<time>/")
    ap.add_argument("--init-dir", default=str(ROOT / "checkpoints"), help="warm starts: <task>.safetensors here")
    ap.add_argument("--bench-presets", type=lambda s: s.split(","), default=["paper", "lite"])
    ap.add_argument("--bench-sizes", type=lambda s: [tuple(int(v) for v in x.split("x"))[::-1] for x in s.split(",")],
                    default=[(512, 512), (1080, 1920)], help="WxH,... (default 512x512,1920x1080)")
    ap.add_argument("--extra", default="", help="more arguments for the trainer")
    ap.add_argument("--trainer", default=f"{shlex.quote(sys.executable)} -m drcnet.train",
                    help="the training command the task arguments are appended to (tests put a stub here)")
    ap.add_argument("--child-slack", type=float, default=45.0,
                    help="seconds a training child may run past its budget (start-up, final validation and save)")
    ap.add_argument("--bench", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--tests", action=argparse.BooleanOptionalAction, default=True)
    return ap.parse_args(argv)


def trainer_command(task: str, seconds: float, args, run: Path) -> list[str]:
    """The task's recipe on the wall-clock schedule; the burst overrides only what a GPU changes."""
    recipe = load_recipe(task)
    preset = args.preset or recipe.train.get("preset", "lite")
    cmd = shlex.split(args.trainer) + [
        "--recipe", task, "--preset", preset, "--minutes", f"{seconds / 60:.4f}", "--schedule", "time",
        "--batch", str(args.batch), "--patch", str(args.patch),
        "--data", str(Path(args.data) / "train"), "--val-data", str(Path(args.data) / "val"),
        "--val-every", "0", "--val-count", str(args.val_count), "--val-size", str(args.val_size),
        "--save-every", "100", "--log-every", "25", "--out", str(run), "--no-progress"]
    init = checkpoint_file(Path(args.init_dir), task)
    if init.is_file() and preset == _preset_of(init):
        cmd += ["--init", str(init)]
    return cmd + shlex.split(args.extra)


def _preset_of(checkpoint: Path) -> str:
    from drcnet.model.checkpoint import read_metadata

    try:
        return read_metadata(checkpoint).get("preset", "")
    except Exception:
        return ""


def copy_weights(run: Path, task: str, out: Path) -> dict:
    """The run's best weights (else its last) as float16 <task>.safetensors in out: done first, so that nothing
    read afterwards (a log cut short by a kill) can lose them."""
    from drcnet.model.checkpoint import load_checkpoint, save_checkpoint

    for name in ("best", "last"):
        source = checkpoint_file(run, name)
        if source.is_file():
            model, meta = load_checkpoint(source)
            save_checkpoint(checkpoint_file(out, task), model, task=task, preset=meta.get("preset", ""),
                            training=meta.get("training", {}), metrics=meta.get("metrics", {}), dtype="float16")
            return {"weights": checkpoint_file(out, task).name, "weights_from": source.name,
                    "weights_kind": meta.get("weights", "raw")}
    return {}


def summarise_log(records: list[dict]) -> dict:
    summary = {}
    vals = [r for r in records if "val_psnr" in r]
    steps = [r for r in records if "images_per_s" in r]
    if vals:
        summary["val_before"], summary["val_after"] = vals[0]["val_psnr"], vals[-1]["val_psnr"]
        if "val_psnr_ema" in vals[-1]:
            summary["val_after_ema"] = vals[-1]["val_psnr_ema"]
    if steps:
        tail = steps[len(steps) // 2:] or steps              # after the warm-up
        summary["images_per_s"] = round(statistics.median(r["images_per_s"] for r in tail), 1)
        summary["data_wait"] = round(statistics.median(r.get("data_wait", 0) for r in tail), 4)
        summary["iterations"] = steps[-1]["iter"]
    return summary


def train_task(task: str, seconds: float, timeout: float, args, run: Path) -> dict:
    """Train one task into its own run folder; whatever happens to the child, its weights come back."""
    result = {"task": task, "seconds_budget": round(seconds, 1), "run": str(run)}
    start = time.monotonic()
    code, _ = run_logged(trainer_command(task, seconds, args, run), timeout=timeout, grace=STOP_GRACE)
    result.update(exit=code, seconds=round(time.monotonic() - start, 1), timed_out=code == TIMED_OUT)
    try:
        result.update(copy_weights(run, task, args.out))
    except Exception as e:                                  # a half-written file: report it, keep going
        result["weights_error"] = repr(e)
    records = read_jsonl(run / "log.jsonl")
    result["log"] = records
    result.update(summarise_log(records))
    return result


def train_all(args, left, report: dict, write_report) -> None:
    runs = Path(args.runs) / f"burst-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"   # fresh on every call
    shares = {t: SHARES.get(t, 1.0) for t in args.tasks}
    for i, task in enumerate(args.tasks):
        # Never plan past the deadline: the budget is also capped by what is left, and the timeout by it too.
        reserve = STOP_GRACE + 10.0
        after = AFTER_TRAINING if args.bench or args.tests else 0.0
        pending = args.tasks[i:]
        usable = left() - reserve - after - len(pending) * args.child_slack
        seconds = min(args.train_seconds * shares[task] / sum(shares.values()),
                      usable * shares[task] / sum(shares[t] for t in pending))
        if seconds < 5:
            log(f"skip training {task}: {left():.0f} s left")
            report["train"].append({"task": task, "skipped": f"{left():.0f} s left"})
            continue
        timeout = min(seconds + args.child_slack, left() - reserve - after)
        try:
            report["train"].append(train_task(task, seconds, timeout, args, runs / task))
        except Exception as e:                                # keep the other tasks' results
            report["train"].append({"task": task, "error": repr(e)})
        write_report()


def data_cost(args, device) -> dict:
    """Milliseconds to make one training batch on the device (the part of a step that is data), per task."""
    import torch

    from drcnet.data.datasets import list_images
    from drcnet.data.device_batches import DeviceBatchStream

    images = list_images(Path(args.data) / "train")
    costs = {}
    for task in args.tasks:
        stream = DeviceBatchStream(images, task, args.patch, args.batch, device, workers=0)
        batches = stream(0, 6)
        next(batches)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in batches:
            pass
        if device.type == "cuda":
            torch.cuda.synchronize()
        costs[task] = round((time.perf_counter() - start) / 5 * 1000, 1)
    return costs


def benchmark(device, presets, sizes, repeats: int = 5) -> list[dict]:
    import torch

    from drcnet.eval.timing import median_seconds
    from drcnet.serve.engine import Restorer
    from drcnet.model.network import create_model

    rows = []
    for preset in presets:
        restorer = Restorer(create_model(preset).eval(), device=device)
        for h, w in sizes:
            image = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(0)).numpy()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds = median_seconds(lambda: restorer.restore(image, tile=0), repeats, device)
            peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None
            rows.append({"preset": preset, "size": f"{w}x{h}", "precision": restorer.precision,
                         "median_ms": round(seconds * 1000, 1),
                         "peak_mb": round(peak) if peak is not None else None})
            log(f"bench {preset} {w}x{h} {restorer.precision}: {rows[-1]['median_ms']} ms, peak {rows[-1]['peak_mb']} MB")
    return rows


def measure_device(args, left, report: dict, pack_ok: bool) -> None:
    """The data cost (needs the pack) and the inference benchmark, each failing on its own."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.bench and pack_ok and left() > 40:
        try:
            report["data_ms_per_batch"] = data_cost(args, device)
        except Exception as e:
            report["data_error"] = repr(e)
    if args.bench and left() > 60:
        try:
            report["bench"] = benchmark(device, args.bench_presets, args.bench_sizes)
        except Exception as e:
            report["bench_error"] = repr(e)


def main(argv=None, start: float | None = None) -> dict:
    """start: time.monotonic() when the interpreter began (scripts/gpu_burst.py takes it before any import)."""
    t0 = time.monotonic() if start is None else start
    seconds_before_main = round(time.monotonic() - t0, 2)       # the imports, torch's included
    args = parse_args(argv)
    left = lambda: args.deadline - (time.monotonic() - t0)          # noqa: E731
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "train": [],
              "bench": [], "tests": None, "seconds_before_main": seconds_before_main}
    log("machine:", json.dumps(report["machine"]))

    def write_report():
        report["seconds"] = round(time.monotonic() - t0, 1)
        (args.out / "burst.json").write_text(json.dumps(report, indent=1) + "\n")

    try:
        report["data_pack"] = check_pack(Path(args.data))
        log("data pack:", report["data_pack"])
    except MissingPackError as e:
        report["data_pack_error"] = str(e)
        log(f"NO TRAINING: {e}")
    write_report()
    if "data_pack" in report:
        train_all(args, left, report, write_report)
    measure_device(args, left, report, "data_pack" in report)
    write_report()
    if args.tests and left() > 40:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        code, out = run_logged([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                "-m", "not slow", *TEST_FILES], timeout=left() - 15, env=env, grace=5.0)
        report["tests"] = {"exit": code, "summary": out.strip().splitlines()[-1] if out.strip() else ""}
    write_report()
    print_table(report)
    if "data_pack_error" in report:
        raise MissingPackError(f"no training: {report['data_pack_error']}")
    return report


def print_table(report: dict) -> None:
    log("\n| task | iterations | patches/s | data wait | data ms/batch | val PSNR before -> after | seconds | exit |")
    log("|---|---|---|---|---|---|---|---|")
    for r in report["train"]:
        log(f"| {r['task']} | {r.get('iterations', '-')} | {r.get('images_per_s', '-')} | {r.get('data_wait', '-')} | "
            f"{report.get('data_ms_per_batch', {}).get(r['task'], '-')} | "
            f"{r.get('val_before', float('nan')):.2f} -> {r.get('val_after', float('nan')):.2f} | "
            f"{r.get('seconds', '-')} | {r.get('exit', r.get('error', r.get('skipped')))} |")
    if report["bench"]:
        log("\n| preset | size | precision | median ms | peak MB |\n|---|---|---|---|---|")
        for b in report["bench"]:
            log(f"| {b['preset']} | {b['size']} | {b['precision']} | {b['median_ms']} | {b['peak_mb']} |")
    log(f"\nmachine: {report['machine'].get('device')}; tests: {report['tests']}; total {report['seconds']} s")


if __name__ == "__main__":
    main()
