"""CPU (and CUDA) inference benchmark: `python -m drcnet.bench [--presets paper,lite --sizes 256,512]`.

Prints a markdown table per device. Weights are random (latency does not depend on their values), so the PSNR
column measures bf16 against fp32 on the same random network, not restoration quality.

- latency: median of --repeats timed forwards after one warm-up, batch 1.
- peak memory: CPU, the rise of the process's peak resident set (VmHWM, reset before each measurement through
  /proc/self/clear_refs) above the resident set before the run; CUDA, torch.cuda.max_memory_allocated.
- GFLOPs: 2 x the multiply-accumulates of every convolution (forward hooks; a grouped conv's output sample
  sees in_channels / groups inputs); the elementwise work is left out.
- floor: model FLOPs / the FLOP/s of one large bf16 channels_last conv (256 -> 256, 3x3, 1x256x128x128)
  measured here: the time the model would take if every conv ran as fast as the best case.
- 12 MP: a 4000x3000 synthetic image through the tiled Restorer in a child process (its own peak RSS).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from drcnet.core.device import describe_device
from drcnet.core.metrics import psnr
from drcnet.serve.engine import WHOLE_TILE
from drcnet.eval.timing import (conv_flops, median_seconds, peak_conv_flops, proc_status_kib, reset_peak_rss,
                                synthetic_image)
from drcnet.model.network import create_model

LAYOUTS = [("fp32 NCHW", torch.float32, torch.contiguous_format),
           ("fp32 channels_last", torch.float32, torch.channels_last),
           ("bf16 channels_last", torch.bfloat16, torch.channels_last)]


# ---------------------------------------------------------------- measurements

def peak_memory_mb(preset: str, size: int, layout: str, device) -> float | None:
    """Peak memory of one forward, in MB, measured in a fresh child process: in this process the allocator
    keeps freed blocks, so a second forward would show no rise at all. CPU: the rise of the peak resident set
    (VmHWM, reset through /proc/self/clear_refs) over the resident set just before the forward; CUDA:
    torch.cuda.max_memory_allocated over the allocation before it."""
    cmd = [sys.executable, "-m", "drcnet.eval.bench", "--memory-child", f"{preset},{size},{layout}",
           "--device", str(device)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def memory_child(spec: str, device: str) -> None:
    preset, size, layout = spec.split(",")
    device = torch.device(device)
    _, dtype, memory_format = next(entry for entry in LAYOUTS if entry[0] == layout)
    model = create_model(preset).eval().to(device, dtype, memory_format=memory_format)
    x = torch.from_numpy(synthetic_image(int(size), int(size))).permute(2, 0, 1)[None]
    x = x.to(device, dtype).contiguous(memory_format=memory_format)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    elif not reset_peak_rss():
        print(json.dumps({"peak_mb": None}))
        return
    else:
        before = proc_status_kib("VmRSS")
    with torch.inference_mode():
        model(x)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        peak = (proc_status_kib("VmHWM") - before) / 1024
    print(json.dumps({"peak_mb": peak}))


# ---------------------------------------------------------------- the table

def bench_preset(preset: str, size: int, device, repeats: int, floor_flops: float) -> list[dict]:
    torch.manual_seed(0)
    base = create_model(preset).eval()
    image = torch.from_numpy(synthetic_image(size, size)).permute(2, 0, 1)[None].to(device)
    flops = conv_flops(base.to(device), image)
    rows, outputs = [], {}
    for name, dtype, layout in LAYOUTS:
        model = create_model(preset).eval()
        model.load_state_dict(base.state_dict())
        model = model.to(device, dtype, memory_format=layout)
        x = image.to(dtype).contiguous(memory_format=layout)

        def forward():
            with torch.inference_mode():
                return model(x)[1]

        seconds = median_seconds(forward, repeats, device)
        memory = peak_memory_mb(preset, size, name, device)
        outputs[name] = forward()
        rows.append(dict(preset=preset, size=size, layout=name, ms=seconds * 1e3, peak_mb=memory,
                         gflops=flops / 1e9, achieved=flops / seconds / 1e9,
                         vs_floor=seconds / (flops / floor_flops)))
        del model
    reference = outputs["fp32 NCHW"]
    for row in rows:
        row["psnr"] = psnr(outputs[row["layout"]].float().cpu().numpy(), reference.float().cpu().numpy())
        row["speedup"] = rows[0]["ms"] / row["ms"]
    return rows


def print_table(rows: list[dict], device, floor_flops: float) -> None:
    print(f"\n### {describe_device(device)}: floor conv {floor_flops / 1e9:.0f} GFLOP/s\n")
    print("| preset | size | layout | median ms | speed-up vs fp32 NCHW | peak MB | GFLOPs | GFLOP/s "
          "| x floor | PSNR vs fp32 (dB) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mem = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        print(f"| {r['preset']} | {r['size']} | {r['layout']} | {r['ms']:.0f} | {r['speedup']:.2f} | {mem} "
              f"| {r['gflops']:.1f} | {r['achieved']:.0f} | {r['vs_floor']:.2f} | {r['psnr']:.1f} |")


# ---------------------------------------------------------------- the 12-megapixel tiled run

def large_image_child(preset: str, height: int, width: int, device: str | None) -> None:
    """Runs in its own process, so the peak RSS it reports is the tiled restoration's alone (model, input
    image, accumulators and one tile's activations). Every 10 tiles it logs progress and the peak so far
    to stderr, so a run cut short still tells its memory and its pace."""
    from drcnet.serve.engine import Restorer

    torch.manual_seed(0)
    restorer = Restorer(create_model(preset), device=device)
    image = synthetic_image(height, width)
    reset_peak_rss()                     # forget the float64 temporaries of building the test image
    start = time.perf_counter()

    def log(done, total):
        if done % 10 == 0 or done == total:
            print(f"{done}/{total} tiles, {time.perf_counter() - start:.0f} s, "
                  f"peak RSS {(proc_status_kib('VmHWM') or 0) / 1024:.0f} MB", file=sys.stderr, flush=True)

    restorer.restore(image, progress=log)
    stats = dict(restorer.last_stats, peak_rss_mb=(proc_status_kib("VmHWM") or 0) / 1024)
    print(json.dumps(stats))


def large_image(preset: str, height: int, width: int, device) -> dict:
    cmd = [sys.executable, "-m", "drcnet.eval.bench", "--large-child", preset, "--large-size", f"{height}x{width}",
           "--device", str(device)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)   # its progress shows on stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main

def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m drcnet.bench", description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="paper,lite")
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny preset, 64 px, 1 repeat, 0.25 MP tiled run")
    p.add_argument("--full", action="store_true", help="the 12 MP run with the paper preset instead of lite")
    p.add_argument("--skip-large", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--large-only", action="store_true", help="only the 12 MP tiled run")
    p.add_argument("--large-child", help=argparse.SUPPRESS)
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    p.add_argument("--large-size", default="3000x4000", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    height, width = map(int, args.large_size.split("x"))
    if args.large_child:
        return large_image_child(args.large_child, height, width, args.device)
    if args.memory_child:
        return memory_child(args.memory_child, args.device or "cpu")
    if args.quick:
        args.presets, args.sizes, args.repeats, (height, width) = "tiny", "64", 1, (500, 500)
    devices = [torch.device(args.device)] if args.device else (
        [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else []))
    for device in devices:
        if not args.large_only:
            floor = peak_conv_flops(device)
            rows = [row for preset in args.presets.split(",") for size in map(int, args.sizes.split(","))
                    for row in bench_preset(preset, size, device, args.repeats, floor)]
            print_table(rows, device, floor)
        if not args.skip_large:
            preset = "paper" if args.full else ("tiny" if args.quick else "lite")
            s = large_image(preset, height, width, device)
            print(f"\n{height}x{width} ({height * width / 1e6:.1f} MP), {preset} preset, tiled {s["tiles"]} x {WHOLE_TILE} px, "
                  f"{s['device']} {s['precision']}: {s['seconds']:.1f} s, peak RSS {s['peak_rss_mb']:.0f} MB "
                  f"(child process VmHWM)")


if __name__ == "__main__":
    main()
