"""Hugging Face ZeroGPU, the Spaces hardware that attaches a GPU only while a function decorated with
`spaces.GPU(duration=...)` runs: whether the app runs there, the decorator, and how many seconds each handler asks
for (the platform checks a call's duration against the visitor's quota before it starts, and shorter requests queue
ahead, so each asks for what its work needs, not the 60 s default).

app.py imports `spaces` before anything imports torch (on ZeroGPU it patches torch's CUDA at import) and hands the
module, or None where it is not installed, to the functions here. On ZeroGPU the models are loaded on CUDA at
start-up, at module scope, where ZeroGPU packs them once and streams them onto the GPU of each call; nothing is
compiled there (ZeroGPU does not support torch.compile) and no background thread touches the GPU.
"""
from __future__ import annotations

import os
from typing import Callable

ENV = "SPACES_ZERO_GPU"             # set by Hugging Face on ZeroGPU hardware (the `spaces` package reads it too)

# Seconds a call asks for. START: a cold worker's CUDA start-up and the three small models streamed onto the GPU.
# Restore works at full resolution: reading, tiling, blending and writing the result are CPU work inside the call,
# about linear in the pixels (PER_MEGAPIXEL, generous: a 40-megapixel photo asks for 90 s). The other tabs work on
# at most 512 px (Limits.inspect_max_side), so their time does not depend on the upload: matplotlib's figures
# (inspect, figure, t sweep), nine model runs (t sweep), VGG features (Intra-CR) and the CPU baselines (Compare,
# BM3D within its size limit) set them.
START = 10
PER_MEGAPIXEL = 2.0
MAX_SECONDS = 120
SECONDS = {"inspect": 20, "coverage_t": 20, "inspect_figure": 25, "t_sweep": 30, "intra_cr": 30, "compare": 40}


def on_zero_gpu(spaces) -> bool:
    """Whether the app runs on ZeroGPU hardware: the `spaces` package is there and Hugging Face says so."""
    return spaces is not None and os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def serving_options(zero_gpu: bool) -> dict:
    """The serving Registry's options: on ZeroGPU, CUDA ($DRCNET_DEVICE still wins, e.g. in tests) and no compiling;
    elsewhere the defaults ($DRCNET_DEVICE, $DRCNET_COMPILE)."""
    return {"device": os.environ.get("DRCNET_DEVICE") or "cuda", "compile": "off"} if zero_gpu else {}


def gpu_decorator(spaces) -> Callable:
    """gpu(duration) -> a decorator: spaces.GPU(duration=duration) where `spaces` is installed (a plain pass-through
    off ZeroGPU), else one that returns the function unchanged. duration: seconds, or a callable that takes the
    handler's own arguments and returns them."""
    if spaces is None:
        return lambda duration: (lambda fn: fn)
    return lambda duration: spaces.GPU(duration=duration)


def image_megapixels(image) -> float:
    """The input's size in megapixels, read from the file's header (nothing decoded); 0 when it cannot be read
    (the handler then says why)."""
    from PIL import Image
    try:
        with Image.open(image) as im:
            return im.size[0] * im.size[1] / 1e6
    except Exception:
        return 0.0


def restore_seconds(image, *_, **__) -> int:
    """Restore's request: START plus PER_MEGAPIXEL per megapixel of the input, at most MAX_SECONDS."""
    return min(MAX_SECONDS, round(START + PER_MEGAPIXEL * image_megapixels(image)))
