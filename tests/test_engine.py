"""drcnet.serve.engine: tiling, blending, dtypes, precision; with random tiny models and with the shipped checkpoints.

Every Restorer runs on the `device` fixture (tests/conftest.py): the CPU, and CUDA when present."""
import ctypes
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from drcnet import create_model
from drcnet.model.checkpoint import load_checkpoint
from drcnet.core.device import pick_precision
from drcnet.serve.engine import WHOLE_OVERLAP, WHOLE_TILE, Restorer
from drcnet.serve.tiling import blend_ramp, tile_starts, tiles_for
from drcnet.core.metrics import psnr

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


class PointwiseNet(nn.Module):
    """A stand-in whose output depends on each pixel alone, so tiling must not change it at all."""

    def forward(self, x):
        return x * 0.5, x.sqrt()

    def set_threshold(self, t):
        self.t = t


@pytest.fixture(scope="module")
def tiny_restorer(device):
    torch.manual_seed(0)
    return Restorer(create_model("tiny"), device=device, precision="fp32")


def smooth_image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    phase = rng.uniform(0, 2 * np.pi, 3)
    img = np.stack([0.5 + 0.3 * np.sin(3 * xx + 2 * yy + p) for p in phase], axis=2)
    return img.astype(np.float32)


def test_tile_starts_cover_the_image_with_the_requested_overlap():
    starts = tile_starts(200, 64, 16)
    assert starts[0] == 0 and starts[-1] == 200 - 64
    assert all(b - a <= 64 - 16 for a, b in zip(starts, starts[1:]))
    assert tile_starts(50, 64, 16) == [0]


def test_blend_weights_are_a_partition_of_unity_between_tiles():
    h, w, tile, overlap = 150, 170, 64, 16
    total = np.zeros((h, w))
    for y, x, th, tw, wt in tiles_for(h, w, tile, overlap):
        total[y:y + th, x:x + tw] += wt
    assert total.min() > 0.0
    # the evenly spaced tiles add up to exactly one; only the flush last tile adds extra (normalised away)
    assert np.allclose(total[:86, :86], 1.0, atol=1e-6)   # before the flush tile at 86
    ramp = blend_ramp(64, 16, True, True)
    assert np.allclose(ramp[:16] + ramp[48:], 1.0, atol=1e-6)   # sin^2 up + cos^2 down


def test_tiled_equals_untiled_for_a_pointwise_model(device):
    r = Restorer(PointwiseNet(), device=device, precision="fp32")
    img = np.random.default_rng(1).random((97, 131, 3)).astype(np.float32)
    whole = r.restore(img, tile=0)
    tiled = r.restore(img, tile=48, overlap=12)
    assert r.last_stats["tiles"] > 4
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    np.testing.assert_allclose(whole, np.sqrt(img), atol=1e-6)


def test_uint8_and_float_in_give_the_same_dtype_and_shape_out(tiny_restorer):
    img = (smooth_image(40, 56) * 255).astype(np.uint8)
    out = tiny_restorer.restore(img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    f = tiny_restorer.restore(img.astype(np.float64) / 255)
    assert f.dtype == np.float64 and f.shape == img.shape and 0 <= f.min() and f.max() <= 1
    assert np.abs(f * 255 - out).max() <= 1.0


@pytest.mark.parametrize("shape", [(37, 45), (37, 45, 1)])
def test_grayscale_returns_the_channel_mean_in_the_input_shape(tiny_restorer, shape):
    grey = smooth_image(37, 45)[..., 0]
    img = grey.reshape(shape)
    out = tiny_restorer.restore(img)
    assert out.shape == shape and out.dtype == np.float32
    rgb = tiny_restorer.restore(np.repeat(grey[..., None], 3, axis=2))
    np.testing.assert_allclose(out.reshape(37, 45), rgb.mean(axis=2), atol=1e-6)


def test_odd_sizes_progress_and_stage1(tiny_restorer):
    img = smooth_image(71, 93)
    calls = []
    out2, out1 = tiny_restorer.restore(img, tile=48, overlap=8, progress=lambda d, t: calls.append((d, t)),
                                       return_stage1=True)
    n = tiny_restorer.last_stats["tiles"]
    assert n == 2 * 3 and calls[-1] == (n, n)         # progress after each forward (one tile each: "whole" tiles)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) == n
    assert out2.shape == out1.shape == img.shape and not np.allclose(out1, out2)
    assert set(tiny_restorer.last_stats) >= {"seconds", "tiles", "device", "precision", "size"}
    assert tiny_restorer.last_stats["size"] == (71, 93)


def test_set_threshold_reaches_the_model_and_changes_the_output(tiny_restorer):
    img = smooth_image(32, 32)
    a = tiny_restorer.restore(img)
    tiny_restorer.set_threshold(0.5)   # random-init responses sit near 0.5: the mask splits
    try:
        b = tiny_restorer.restore(img)
    finally:
        tiny_restorer.reset_threshold()
    assert tiny_restorer.default_t == 0.75 and tiny_restorer.model.cfg.t == 0.75
    assert not np.allclose(a, b)
    assert np.array_equal(tiny_restorer.restore(img), a)     # back to the trained threshold's output


def test_bf16_weights_are_bf16_and_close_to_fp32_on_a_random_model(device):
    torch.manual_seed(0)
    model = create_model("tiny")
    ref = Restorer(create_model("tiny"), device=device, precision="fp32")
    ref.model.load_state_dict(model.state_dict())
    low = Restorer(model, device=device, precision="bf16")
    assert next(low.model.parameters()).dtype == torch.bfloat16 and low.last_stats == {}
    img = smooth_image(48, 48)
    a, b = ref.restore(img), low.restore(img)
    assert low.last_stats["precision"] == "bf16" and 40 < psnr(b, a) < 100      # bf16 really ran, and close


def test_precision_choice():
    assert pick_precision(torch.device("cpu"), "fp32") == "fp32"
    assert pick_precision(torch.device("mps")) == "fp32"
    with pytest.raises(ValueError):
        pick_precision(torch.device("cpu"), "fp16")


def test_overlap_larger_than_half_the_tile_is_refused(tiny_restorer):
    with pytest.raises(ValueError, match="overlap"):
        tiny_restorer.restore(smooth_image(100, 100), tile=32, overlap=20)


# ---------------------------------------------------------------- the shipped checkpoints

def shipped(task: str, device, precision=None) -> Restorer:
    """checkpoints/<task>.safetensors through the public API (whatever its storage dtype, it loads as float32).
    With the paper's whole-image statistics, so that tile=0 and the requested tiles run as asked: these tests
    check the tiling and precision machinery (the default "matched" tiles are tests/test_statistics.py's)."""
    path = CHECKPOINTS / f"{task}.safetensors"
    if not path.is_file():
        pytest.skip(f"{path.name} is not shipped in this checkout")
    model, meta = load_checkpoint(path)
    assert meta["task"] == task and next(model.parameters()).dtype == torch.float32
    return Restorer(model, device=device, precision=precision, meta=meta, statistics="whole")


def degraded_photo(task: str, h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean) float32: skimage's coffee (400x600), mirrored to any width, degraded for the task
    with the project's own synthetic degradation (denoise: sigma 25)."""
    from skimage import data

    from drcnet.data.degrade import degrade

    coffee = data.coffee().astype(np.float32) / 255.0
    reps = -(-w // 600)
    wide = np.concatenate([coffee if i % 2 == 0 else coffee[:, ::-1] for i in range(reps)], axis=1)
    high = np.concatenate([wide, wide[::-1]], axis=0)
    clean = np.ascontiguousarray(high[:h, :w])
    d, _ = degrade(clean, task, np.random.default_rng(seed), **({"sigma": 25} if task == "denoise" else {}))
    return np.clip(d, 0, 1).astype(np.float32), clean


BF16_MIN_DB = 55.0       # README (Using the engine): bf16 output is about 58 dB from fp32; shipped weights 57-67 dB


@pytest.mark.parametrize("task", ["denoise", "derain", "deblur"])
def test_bf16_is_close_to_fp32_on_the_shipped_checkpoint_whole_and_tiled(task, device, deterministic):
    """The README's bf16 figure with trained weights: whole (tile=0) and through overlapping tiles."""
    ref, low = shipped(task, device, "fp32"), shipped(task, device, "bf16")
    img, clean = degraded_photo(task, 128, 128)
    for tile, overlap in ((0, 0), (80, 16)):
        a, b = ref.restore(img, tile=tile, overlap=overlap), low.restore(img, tile=tile, overlap=overlap)
        assert low.last_stats["precision"] == "bf16" and low.last_stats["tiles"] == (4 if tile else 1)
        db = psnr(b, a)
        print(f"{task} {'tiled 80/16' if tile else 'whole'}: bf16 vs fp32 {db:.1f} dB")
        assert BF16_MIN_DB < db < 100, (task, tile, db)                              # close, yet really bf16
        assert abs(psnr(b, clean) - psnr(a, clean)) < 0.1                             # the same restoration


def column_error(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Mean |a - b| of each column (axis=1) or row (axis=0)."""
    return np.abs(a - b).mean(axis=(1 - axis, 2))


@pytest.mark.parametrize("statistics,task,shape", [("matched", "denoise", (96, 992)),
                                                   ("whole", "derain", (96, 1100))])
def test_no_seams_at_the_default_tilings_with_a_shipped_checkpoint(statistics, task, shape, device):
    """Tiled against one whole pass with trained weights, at the precision the app picks, in the tiles that
    restore() cuts by default: the checkpoint's inference spec ("matched") and, for the paper's statistics,
    WHOLE_TILE px tiles above that size. The error at the tile junctions stays within the error elsewhere
    (per-tile statistics make tiled differ from whole everywhere; a tile edge that shows, as with overlap 0, is
    4-25/255 in its column) and the result does not step there."""
    h, w = shape
    r = shipped(task, device)
    r.set_statistics(statistics)
    tile, overlap = (r.spec.tile, r.spec.overlap) if statistics == "matched" else (WHOLE_TILE, WHOLE_OVERLAP)
    img, _ = degraded_photo(task, h, w)
    tiled = r.restore(img)
    assert r.last_stats["tiles"] == len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap)) > 1
    with r.using(statistics="whole"):
        whole = r.restore(img, tile=0)
    assert np.abs(tiled - whole).mean() < (3 if statistics == "matched" else 2) / 255
    for axis, length in ((0, h), (1, w)):
        starts = tile_starts(length, tile, overlap)
        if len(starts) == 1:
            continue
        edges = sorted({e for a, b in zip(starts, starts[1:]) for e in (b, a + tile)})    # tile edges inside
        band = sorted({c for e in edges for c in range(e - overlap // 2, e + overlap // 2)})
        other = [c for c in range(8, length - 8) if c not in set(band)]         # image borders aside
        err = column_error(tiled, whole, axis)
        print(f"{statistics} {task} axis {axis}: junction max {err[band].max() * 255:.2f}, elsewhere max "
              f"{err[other].max() * 255:.2f} (of 255)")
        assert err[band].max() <= 1.25 * err[other].max(), (axis, err[band].max(), err[other].max())   # 25 %: other CPUs, CUDA
        # no step: the change between neighbouring columns at the junctions is the whole image's change there
        jump = np.abs(np.diff(tiled, axis=axis)).mean(axis=(1 - axis, 2))
        ref = np.abs(np.diff(whole, axis=axis)).mean(axis=(1 - axis, 2))
        excess = jump - ref
        # A seam (overlap 0) steps 4/255 on average over the band and 2x elsewhere's worst column; blended tiles
        # step like any other column (176/8: band mean 0.17, elsewhere 0.19 of 255), and their single worst
        # column sits within elsewhere's by the same 25 % as above (1.23 against 1.18 of 255 on this CPU).
        assert excess[band].mean() <= excess[other].mean() + 0.5 / 255, (axis, excess[band].mean())
        assert excess[band].max() <= max(1.25 * excess[other].max(), 0.5 / 255), (axis, excess[band].max())


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                       "fsmblks", "uordblks", "fordblks", "keepcost")]


def glibc_mallinfo2():
    if not sys.platform.startswith("linux") or os.environ.get("DRCNET_ALLOCATOR") == "system":
        return None
    fn = getattr(ctypes.CDLL(None), "mallinfo2", None)
    if fn is not None:
        fn.restype = MallInfo2
    return fn


@pytest.mark.skipif(glibc_mallinfo2() is None, reason="glibc's allocator only")
def test_a_cpu_restorer_keeps_freed_memory_for_the_next_large_tensor():
    """Without keep_freed_memory glibc serves a 64 MB tensor with a fresh mapping (hblkhd grows) and unmaps it
    when freed, so every large temporary of an eager forward comes back as new pages to fault in."""
    Restorer(create_model("tiny"), device="cpu")
    info, size = glibc_mallinfo2(), 64 * 2 ** 20
    mapped = info().hblkhd
    x = torch.ones(size, dtype=torch.uint8)
    assert info().hblkhd == mapped                  # from the heap, not a new mapping
    del x
    assert info().fordblks >= size                  # freed, and kept for the next one
