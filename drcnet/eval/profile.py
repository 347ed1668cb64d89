"""Where a forward's CPU time goes: `python -m drcnet.profile [--presets paper,lite --sizes 256,512]`.

For each preset, size and mode (eager, compiled) one bf16 channels_last forward is profiled with torch.profiler
after warm-up and the top operators are printed as shares of the total self CPU time. Shares are ratios, so they
survive a loaded machine. Compiled graphs show inductor's fused kernels by name (cpp_fused_...; kernel
profiling is switched on for this), next to the oneDNN convolutions they call.

The growth column answers "does any work grow faster than the pixel count?": an operator's share at the
largest size over its share at the smallest. Work linear in H*W keeps its share (about 1; shares, not seconds,
so the load of the machine cancels); work quadratic in H*W would grow its share about as fast as the pixel count
(x4 from 256 to 512 px) and crowd out the rest. Constant work (kernel launches, tiny per-channel tensors) shrinks.

`python -m drcnet.profile --convs` answers another question: how close to the machine's peak the convolutions
run, for the engine's default path (the shipped denoise checkpoint, its inference spec's tiles) and for NAFNet-w32
on the same 512 px photo. Every convolution is timed by forward hooks (eager; the compiled graph calls the same
oneDNN convolutions) and its FLOPs counted from its output shape. If the largest convolutions already run near
the best rate seen, no compiler setting makes a restore much faster: only fewer FLOPs would.
"""
from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from drcnet.eval.timing import conv_macs, synthetic_image
from drcnet.model.network import create_model


def canonical(name: str) -> str:
    """One name per kind of work across graphs and sizes: inductor numbers its graphs and kernels
    (graph_3_cpp_fused_add_mul_12) and hashes its compiled graphs; drop the numbers and the hashes."""
    name = re.sub(r"^graph_\d+_", "", name)
    name = re.sub(r"^(cpp_fused_.*?)_\d+$", r"\1", name)
    name = re.sub(r"CompiledFxGraph \w+", "CompiledFxGraph", name)
    return re.sub(r"(Torch-Compiled Region): \d+/\d+", r"\1", name)


def op_times(forward, size: int, runs: int = 2) -> dict[str, float]:
    """Self CPU microseconds per operator over `runs` forwards of a size x size image, after one warm-up (for a
    compiled forward: the compile)."""
    image = synthetic_image(size, size)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        forward(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                forward(x)
    times: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.self_cpu_time_total > 0:
            times[canonical(event.key)] += event.self_cpu_time_total / runs
    return dict(times)


def shares(times: dict[str, float], top: int) -> list[tuple[str, float]]:
    total = sum(times.values())
    return [(name, 100 * t / total) for name, t in sorted(times.items(), key=lambda kv: -kv[1])[:top]]


def profile_preset(preset: str, sizes: list[int], compiled: bool) -> dict[int, dict[str, float]]:
    """The model as the engine holds it (bf16, channels_last), eager or through torch.compile (one graph per
    size; the engine itself compiles only its tile batch, drcnet/serve/compiled.py)."""
    torch.manual_seed(0)
    model = create_model(preset).eval().to(torch.bfloat16, memory_format=torch.channels_last)
    forward = model
    if compiled:
        import torch._inductor.config as inductor_config
        inductor_config.cpp.enable_kernel_profile = True       # name each fused kernel in the profile
        forward = torch.compile(model, dynamic=False)
    return {size: op_times(forward, size) for size in sizes}


def print_tables(preset: str, mode: str, by_size: dict[int, dict[str, float]], top: int) -> None:
    sizes = sorted(by_size)
    small, large = (dict(shares(by_size[s], len(by_size[s]))) for s in (sizes[0], sizes[-1]))
    for size in sizes:
        total_ms = sum(by_size[size].values()) / 1e3
        print(f"\n#### {preset}, {size}x{size}, {mode}: {total_ms:.0f} ms self CPU time per forward\n")
        print(f"| operator | share of self CPU time | share at {sizes[-1]} px / share at {sizes[0]} px |")
        print("|---|---:|---:|")
        for name, pct in shares(by_size[size], top):
            growth = large.get(name, 0) / small[name] if small.get(name) else float("nan")
            print(f"| `{name}` | {pct:.1f} % | {growth:.2f} |")


class ConvTimer:
    """Forward hooks that time every Conv2d / ConvTranspose2d call and count its FLOPs (2 x multiply-adds)."""

    def __init__(self, model: torch.nn.Module):
        self.rows: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])     # key -> calls, seconds, FLOPs
        self._start = 0.0
        self._handles = []
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                self._handles += [m.register_forward_pre_hook(self._before), m.register_forward_hook(self._after)]

    def _before(self, module, inputs):
        self._start = time.perf_counter()

    def _after(self, module, inputs, output):
        seconds = time.perf_counter() - self._start
        x = inputs[0]
        kh, kw = module.kernel_size
        flops = 2 * conv_macs(module, inputs, output)
        key = (f"{type(module).__name__} {module.in_channels}->{module.out_channels} {kh}x{kw}"
               f"{' /' + str(module.groups) if module.groups > 1 else ''} at {tuple(x.shape[:1]) + tuple(x.shape[2:])}")
        row = self.rows[key]
        row[0], row[1], row[2] = row[0] + 1, row[1] + seconds, row[2] + flops

    def remove(self):
        for h in self._handles:
            h.remove()


def conv_table(name: str, model: torch.nn.Module, forward, runs: int = 3, top: int = 12) -> list[str]:
    """Markdown: the convolutions of `runs` calls of forward() (after one warm-up), by kind, with their rate."""
    forward()
    timer = ConvTimer(model)
    start = time.perf_counter()
    for _ in range(runs):
        forward()
    total = (time.perf_counter() - start) / runs
    timer.remove()
    rows = sorted(timer.rows.items(), key=lambda kv: -kv[1][1])
    conv_s = sum(r[1] for _, r in rows) / runs
    flops = sum(r[2] for _, r in rows) / runs
    best = max(r[2] / r[1] for _, r in rows if r[1] > 0)
    lines = [f"\n#### {name}: {total * 1e3:.0f} ms per forward, convolutions {conv_s * 1e3:.0f} ms "
             f"({100 * conv_s / total:.0f} %), {flops / 1e9:.1f} GFLOP at {flops / conv_s / 1e9:.0f} GFLOP/s; at the "
             f"best rate seen ({best / 1e9:.0f} GFLOP/s) they would take {flops / best * 1e3:.0f} ms\n",
             "| convolution (input batch, h, w) | calls | ms per forward | GFLOP | GFLOP/s |", "|---|---:|---:|---:|---:|"]
    for key, (calls, seconds, fl) in rows[:top]:
        lines.append(f"| {key} | {calls // runs} | {seconds / runs * 1e3:.1f} | {fl / runs / 1e9:.2f} | "
                     f"{fl / seconds / 1e9:.0f} |")
    return lines


def conv_report(size: int = 512) -> str:
    """conv_table for the engine's default path on the shipped denoise checkpoint, and for NAFNet-w32."""
    from drcnet.core.paths import checkpoint_file, checkpoints_dir
    from drcnet.eval.nafnet import as_its_code_runs
    from drcnet.eval.speed import real_photo
    from drcnet.serve.engine import Restorer

    image = real_photo(size)
    restorer = Restorer.from_checkpoint(checkpoint_file(checkpoints_dir(), "denoise"), device="cpu")
    nafnet, run_nafnet = as_its_code_runs(image)
    lines = [f"Convolutions on a {size} px photo, {torch.get_num_threads()} threads, bf16, channels_last, eager."]
    lines += conv_table(f"DRCNet, the engine's default path ({restorer.describe_statistics()})", restorer.model,
                        lambda: restorer.restore(image))
    lines += conv_table("NAFNet-w32", nafnet, run_nafnet)
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m drcnet.profile", description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="paper,lite")
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--modes", default="eager,compiled")
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--convs", action="store_true", help="the convolutions' rate: default path vs NAFNet-w32")
    args = p.parse_args(argv)
    if args.convs:
        print(conv_report())
        return
    sizes = sorted(map(int, args.sizes.split(",")))
    for preset in args.presets.split(","):
        for mode in args.modes.split(","):
            print_tables(preset, mode, profile_preset(preset, sizes, mode == "compiled"), args.top)


if __name__ == "__main__":
    main()
