#!/usr/bin/env python
"""The GPU burst: one command that uses a short GPU lease for training, a benchmark and the CUDA tests.

    python scripts/gpu_burst.py --out "$OUT"                      # on the lent GPU machine (docs/gpu.md)
    python scripts/gpu_burst.py --out /tmp/b --train-seconds 60 --tasks denoise --preset tiny --patch 32 \
        --batch 2 --no-bench --no-tests                           # the same code path on a CPU (tests/)

What it does, in this order, each step inside a global deadline so the command ends in time:
1. prints the machine (GPU, memory, torch, CUDA);
2. trains each task in turn, warm-started from checkpoints/<task>.safetensors, for its share of
   --train-seconds (python -m drcnet.train --minutes, its own process: one task failing or hanging does not
   lose the others), and writes <task>.safetensors (float16, the shipped format) to --out as soon as that
   task ends;
3. benchmarks inference with the engine's Restorer on the device (paper and lite presets, 512x512 and
   1920x1080: median ms and peak memory);
4. runs the tests that need no gradio on the device;
5. prints a short table, and writes burst.json (every number, the training logs) to --out.

Data: the photos of the data pack (scripts/pack_data.py; the device call carries the git-ignored folder).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from drcnet.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

TASKS = ("denoise", "derain", "deblur")
# Shares of the training time: deblur is furthest from its target and learns slowest, so it gets the most.
SHARES = {"denoise": 0.3, "derain": 0.25, "deblur": 0.45}
# The paper's Intra-CR for denoise and derain; L1 for deblur, whose Intra-CR term pays the network to write a grid
# of dots (scripts/grid_diagnosis.py; checkpoints/deblur.md): a documented deviation from the paper.
LOSSES = {"denoise": "intra-cr", "derain": "intra-cr", "deblur": "l1"}
TEST_FILES = ["tests/test_model.py", "tests/test_engine.py", "tests/test_probes.py", "tests/test_device_batches.py",
              "tests/test_checkpoint.py"]


def log(*args) -> None:
    print(*args, flush=True)


def machine() -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device=p.name, memory_gb=round(p.total_memory / 2 ** 30, 1), capability=f"{p.major}.{p.minor}")
    else:
        info["device"] = "cpu"
    return info


def run_logged(cmd: list[str], timeout: float, env=None) -> tuple[int, str]:
    """Run a child process, echo its output, return (exit code, output); -9 if it ran past timeout."""
    log("$", " ".join(cmd))
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(1.0, timeout), env=env)
        out = done.stdout + done.stderr
        code = done.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        code = -9
    for line in out.splitlines()[-15:]:
        log("   ", line)
    return code, out


def train_task(task: str, seconds: float, args, out: Path) -> dict:
    run = Path(args.runs) / f"burst-{task}"
    init = Path(args.init_dir) / f"{task}.safetensors"
    cmd = [sys.executable, "-m", "drcnet.train", "--task", task, "--preset", args.preset,
           "--minutes", f"{seconds / 60:.4f}", "--batch", str(args.batch), "--patch", str(args.patch),
           "--loss", LOSSES[task] if args.loss == "auto" else args.loss,
           "--data", str(Path(args.data) / "train"), "--val-data", str(Path(args.data) / "val"),
           "--val-every", "0", "--val-count", str(args.val_count), "--val-size", str(args.val_size),
           "--save-every", "100000", "--log-every", "25", "--out", str(run), "--no-progress"]
    if init.is_file() and args.preset == load_checkpoint(init)[1].get("preset"):
        cmd += ["--init", str(init)]
    if args.extra:
        cmd += args.extra.split()
    result = {"task": task, "seconds_budget": round(seconds, 1)}
    start = time.time()
    code, _ = run_logged(cmd, timeout=seconds + 90)
    result.update(exit=code, seconds=round(time.time() - start, 1))
    logfile = run / "log.jsonl"
    records = [json.loads(line) for line in logfile.read_text().splitlines()] if logfile.is_file() else []
    result["log"] = records
    vals = [r["val_psnr"] for r in records if "val_psnr" in r]
    steps = [r for r in records if "images_per_s" in r]
    if vals:
        result["val_before"], result["val_after"] = vals[0], vals[-1]
    if steps:
        tail = steps[len(steps) // 2:] or steps              # after the warm-up
        result["images_per_s"] = round(statistics.median(r["images_per_s"] for r in tail), 1)
        result["data_wait"] = round(statistics.median(r.get("data_wait", 0) for r in tail), 4)
        result["iterations"] = steps[-1]["iter"]
    weights = run / "last.safetensors"
    if weights.is_file():
        model, meta = load_checkpoint(weights)
        save_checkpoint(out / f"{task}.safetensors", model, task=task, preset=meta.get("preset", ""),
                        training=meta["training"], metrics=meta["metrics"], dtype="float16")
        result["weights"] = f"{task}.safetensors"
    return result


def data_cost(args, device) -> dict:
    """Milliseconds to make one training batch on the device (the part of a step that is data), per task."""
    from drcnet.data import list_images
    from drcnet.device_batches import DeviceBatchStream

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
    from drcnet.bench import median_seconds
    from drcnet.engine import Restorer
    from drcnet.model import create_model

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


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "outputs/burst")))
    ap.add_argument("--tasks", type=lambda s: s.split(","), default=list(TASKS))
    ap.add_argument("--train-seconds", type=float, default=400.0, help="training time of all tasks together")
    ap.add_argument("--deadline", type=float, default=560.0, help="seconds after which no further step starts")
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--loss", default="auto", help="auto: Intra-CR, but L1 for deblur (docs/gpu.md); or one loss for all")
    ap.add_argument("--val-count", type=int, default=16)
    ap.add_argument("--val-size", type=int, default=256)
    ap.add_argument("--data", default=str(ROOT / "datapack"), help="folder with train/ and val/ photos")
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--init-dir", default=str(ROOT / "checkpoints"), help="warm starts: <task>.safetensors here")
    ap.add_argument("--bench-presets", type=lambda s: s.split(","), default=["paper", "lite"])
    ap.add_argument("--bench-sizes", type=lambda s: [tuple(int(v) for v in x.split("x"))[::-1] for x in s.split(",")],
                    default=[(512, 512), (1080, 1920)], help="WxH,... (default 512x512,1920x1080)")
    ap.add_argument("--extra", default="", help="more arguments for python -m drcnet.train")
    ap.add_argument("--bench", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--tests", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args(argv)
    t0 = time.time()
    left = lambda: args.deadline - (time.time() - t0)          # noqa: E731
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "train": [],
              "bench": [], "tests": None}
    log("machine:", json.dumps(report["machine"]))

    def write_report():
        (args.out / "burst.json").write_text(json.dumps(report, indent=1) + "\n")

    shares = {t: SHARES.get(t, 1.0) for t in args.tasks}
    total = sum(shares.values())
    for task in args.tasks:
        seconds = min(args.train_seconds * shares[task] / total, left() - 30)
        if seconds < 5:
            log(f"skip training {task}: {left():.0f} s left")
            continue
        try:
            report["train"].append(train_task(task, seconds, args, args.out))
        except Exception as e:                                # keep the other tasks' results
            report["train"].append({"task": task, "error": repr(e)})
        write_report()
    try:
        if left() > 20:
            report["data_ms_per_batch"] = data_cost(args, device)
        if args.bench and left() > 60:
            report["bench"] = benchmark(device, args.bench_presets, args.bench_sizes)
    except Exception as e:
        report["bench_error"] = repr(e)
    write_report()
    if args.tests and left() > 30:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        code, out = run_logged([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                "-m", "not slow", *TEST_FILES], timeout=left() - 10, env=env)
        report["tests"] = {"exit": code, "summary": out.strip().splitlines()[-1] if out.strip() else ""}
    report["seconds"] = round(time.time() - t0, 1)
    write_report()
    print_table(report)
    return report


def print_table(report: dict) -> None:
    log("\n| task | iterations | patches/s | data wait | data ms/batch | val PSNR before -> after | seconds | exit |")
    log("|---|---|---|---|---|---|---|---|")
    for r in report["train"]:
        log(f"| {r['task']} | {r.get('iterations', '-')} | {r.get('images_per_s', '-')} | {r.get('data_wait', '-')} | "
            f"{report.get('data_ms_per_batch', {}).get(r['task'], '-')} | "
            f"{r.get('val_before', float('nan')):.2f} -> {r.get('val_after', float('nan')):.2f} | "
            f"{r.get('seconds', '-')} | {r.get('exit', r.get('error'))} |")
    if report["bench"]:
        log("\n| preset | size | precision | median ms | peak MB |\n|---|---|---|---|---|")
        for b in report["bench"]:
            log(f"| {b['preset']} | {b['size']} | {b['precision']} | {b['median_ms']} | {b['peak_mb']} |")
    log(f"\nmachine: {report['machine'].get('device')}; tests: {report['tests']}; total {report['seconds']} s")


if __name__ == "__main__":
    main()
