"""Timing and counting, the one module for it: synchronised medians (alone or interleaved), convolution FLOPs,
the floor conv that yardsticks a machine, peak resident memory, and the synthetic test image.

Used by the benchmark (drcnet.eval.bench), the speed table (drcnet.eval.speed), the release's latency and the
GPU burst."""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import torch.nn as nn


def conv_macs(module: nn.Module, inputs, output) -> int:
    """Multiply-accumulates of one Conv2d / ConvTranspose2d call (a forward hook's arguments).

    With groups, each output channel sees only in_channels / groups inputs (ConvTranspose2d: each input channel
    feeds only out_channels / groups outputs), so a depthwise conv does kh x kw MACs per output sample. The
    division is on the channel count, never on the kernel area: kh * kw // groups made depthwise work zero."""
    k = module.kernel_size[0] * module.kernel_size[1]
    if isinstance(module, nn.ConvTranspose2d):      # each input sample scatters into out_ch / groups x k outputs
        return inputs[0].numel() * (module.out_channels // module.groups) * k
    return output.numel() * (module.in_channels // module.groups) * k     # each output gathers in_ch / groups x k


def conv_flops(model: nn.Module, x: torch.Tensor) -> float:
    """2 x multiply-accumulates of all Conv2d / ConvTranspose2d layers for one forward of x (conv_macs)."""
    macs = []

    def count(module, inputs, output):
        macs.append(conv_macs(module, inputs, output))

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return 2.0 * sum(macs)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, repeats: int, device) -> float:
    fn()                    # warm-up: oneDNN / cuDNN pick and cache their kernels on the first call
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(methods: dict, repeats: int, device=torch.device("cpu"), warmup: int = 1) -> dict:
    """Median seconds of each method, timed in turns (a, b, c, a, b, c, ...) after `warmup` calls of each, so a
    change in the machine's load hits every method alike and the ratios between them hold."""
    for _ in range(warmup):
        for fn in methods.values():
            fn()
    sync(device)
    times = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")            # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def floor_conv(device):
    """The floor's yardstick, a large bf16 channels_last 3x3 conv (256 -> 256 on 1x256x128x128): (run, FLOPs)."""
    dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float32
    conv = nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, dtype, memory_format=torch.channels_last)
    x = torch.randn(1, 256, 128, 128, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            conv(x)

    return run, 2.0 * 256 * 256 * 9 * 128 * 128


def peak_conv_flops(device, repeats: int = 5) -> float:
    """FLOP/s of the floor conv: what this machine does at best."""
    run, flops = floor_conv(device)
    return flops / median_seconds(run, repeats, device)


def synthetic_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus fine texture and noise: float32 HxWx3 in [0, 1]."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    channels = [0.5 + 0.25 * np.sin(2 * np.pi * (f * x + g * y) + p) + 0.1 * np.sin(60 * x + 45 * y + p)
                for f, g, p in rng.uniform(0.5, 3, (3, 3))]
    img = np.stack(channels, axis=2) + rng.normal(0, 0.03, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)
