"""Image quality metrics and the paper's error reductions.

PSNR and SSIM on float images in [0, 1]. y_channel=True measures the luma of ITU-R BT.601 as MPRNet and
HINet do for deraining: Y = 16 + 65.481 R + 128.553 G + 24.966 B (R, G, B in [0, 1], Y in 0-255 units),
returned scaled to [0, 1] by /255.

Error reduction (MPRNet's tables, which DRCNet follows): PSNR and SSIM are turned into errors,
RMSE = 10^(-PSNR/20) and DSSIM = (1 - SSIM)/2, and a method's reduction against a reference is
100 * (1 - error_method / error_reference) percent.
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

BT601 = np.array([65.481, 128.553, 24.966], np.float64)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an H x W x 3 image in [0, 1], in [16/255, 235/255]."""
    return (16.0 + np.asarray(image, np.float64) @ BT601) / 255.0


def _prepare(a, b, y_channel: bool):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return (rgb_to_y(a), rgb_to_y(b)) if y_channel else (a, b)


def db_from_mse(mse, data_range: float = 1.0):
    """PSNR in dB of a mean squared error (a number, an array or a tensor): 10 log10(range^2 / mse)."""
    if np.isscalar(mse) or isinstance(mse, np.ndarray):
        return 10.0 * np.log10(data_range ** 2 / mse)
    return 20.0 * np.log10(data_range) - 10.0 * mse.log10()        # a torch tensor


def psnr(a, b, data_range: float = 1.0, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB; inf for identical images."""
    a, b = _prepare(a, b, y_channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(db_from_mse(mse, data_range))


def batch_psnr(x, y):
    """Per-image PSNR in dB of torch batches in [0, 1] (x is clamped first; the trainer's validation and log)."""
    mse = (x.float().clamp(0, 1) - y.float()).pow(2).flatten(1).mean(1)
    return db_from_mse(mse.clamp_min(1e-10))


def ssim(a, b, y_channel: bool = False) -> float:
    """Structural similarity (skimage, 7x7 uniform window, data_range 1); colour images averaged over channels."""
    a, b = _prepare(a, b, y_channel)
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=None if y_channel else -1))


def rmse_from_psnr(p: float) -> float:
    """RMSE (images in [0, 1]) of a PSNR in dB."""
    return float(10.0 ** (-p / 20.0))


def dssim(s: float) -> float:
    """Structural dissimilarity (1 - SSIM) / 2."""
    return (1.0 - float(s)) / 2.0


def reduction(error: float, reference_error: float) -> float:
    """How much smaller error is than reference_error, in percent (negative: larger)."""
    return float("nan") if reference_error == 0 else 100.0 * (1.0 - error / reference_error)


def error_reductions(psnr_ssim: tuple[float, float], reference: tuple[float, float]) -> dict:
    """{"rmse": %, "dssim": %} reductions of a (PSNR, SSIM) pair against a reference pair."""
    (p, s), (rp, rs) = psnr_ssim, reference
    return {"rmse": reduction(rmse_from_psnr(p), rmse_from_psnr(rp)), "dssim": reduction(dssim(s), dssim(rs))}
