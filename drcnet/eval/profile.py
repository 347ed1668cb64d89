"""Where a forward's CPU time goes: `python -m drcnet.profile [--presets paper,lite --sizes 256,512]`.

For each preset, size and mode (eager, compiled) one bf16 channels_last forward is profiled with torch.profiler
after warm-up and the top operators are printed as shares of the total self CPU time. Shares are ratios, so they
survive a loaded machine. Compiled graphs show inductor's fused kernels by name (cpp_fused_...; kernel
profiling is switched on for this), next to the oneDNN convolutions they call.

The growth column answers "does any work grow faster than the pixel count?": an operator's share at the
largest size over its share at the smallest. Work linear in H*W keeps its share (about 1; shares, not seconds,
so the load of the machine cancels); work quadratic in H*W would grow its share about as fast as the pixel count
(x4 from 256 to 512 px) and crowd out the rest. Constant work (kernel launches, tiny per-channel tensors) shrinks.
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from drcnet.eval.timing import synthetic_image
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m drcnet.profile", description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="paper,lite")
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--modes", default="eager,compiled")
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args(argv)
    sizes = sorted(map(int, args.sizes.split(",")))
    for preset in args.presets.split(","):
        for mode in args.modes.split(","):
            print_tables(preset, mode, profile_preset(preset, sizes, mode == "compiled"), args.top)


if __name__ == "__main__":
    main()
