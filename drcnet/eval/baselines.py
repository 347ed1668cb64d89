"""Classical restoration methods to compare DRCNet against.

BASELINES[task][name](degraded, info) -> restored, all float32 H x W x 3 in [0, 1]; info is the dict that
drcnet.data.degrade.degrade returned, so the denoisers know the true sigma and the deblurring methods the true
kernel. Deblurring baselines with "nonblind" in their name are given the true kernel: an advantage DRCNet
(a blind method) does not have, so they are an upper reference for classical methods, not a fair rival.
Optional packages: BM3D is listed only when `bm3d` is importable, the wavelet denoiser only when PyWavelets
(`pywt`, which skimage.restoration.denoise_wavelet needs) is. Interactive callers (the app's Compare) skip a method
on images over its MAX_PIXELS (size_limit_note says why).
"""
from __future__ import annotations

import os

import numpy as np
from scipy import ndimage
from skimage import restoration

WIENER_BALANCE = 0.1        # regulariser; best on average over the evaluation kernels (0.05 small, 0.3 large)
RL_ITERATIONS = 30
TV_WEIGHT_PER_SIGMA = 1.0   # Chambolle weight = this * sigma (sigma in [0, 1] units)


def _sigma(info) -> float:
    return float(info["sigma"]) / 255.0


def _clip(image) -> np.ndarray:
    return np.clip(image, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------ denoise

def nl_means(degraded, info):
    """Non-local means, fast mode, with the true sigma and h = 0.8 sigma (skimage's documented setting)."""
    sigma = _sigma(info)
    if sigma == 0:
        return _clip(degraded)
    return _clip(restoration.denoise_nl_means(degraded, h=0.8 * sigma, sigma=sigma, fast_mode=True,
                                              patch_size=5, patch_distance=6, channel_axis=-1))


def wavelet_bayes(degraded, info):
    """BayesShrink soft wavelet thresholding in YCbCr with the true sigma."""
    return _clip(restoration.denoise_wavelet(degraded, sigma=_sigma(info), method="BayesShrink", mode="soft",
                                             channel_axis=-1, convert2ycbcr=True, rescale_sigma=True))


def tv_chambolle(degraded, info):
    """Total-variation denoising (Chambolle) with a weight proportional to the true sigma."""
    weight = TV_WEIGHT_PER_SIGMA * _sigma(info)
    return _clip(degraded) if weight == 0 else _clip(
        restoration.denoise_tv_chambolle(degraded, weight=weight, channel_axis=-1))


def bm3d_rgb(degraded, info):
    """BM3D (the optional `bm3d` package) with the true sigma."""
    import bm3d

    return _clip(bm3d.bm3d_rgb(degraded, sigma_psd=_sigma(info)))


# ------------------------------------------------------------------------------------------- deblur

def _per_channel_padded(fn, degraded, kernel):
    """Run fn(channel, kernel) on each channel of a reflect-padded copy and crop back: the skimage methods
    assume circular (Wiener) or zero (Richardson-Lucy) boundaries, while the blur used reflect ones."""
    r = kernel.shape[0]
    padded = np.pad(degraded, ((r, r), (r, r), (0, 0)), mode="reflect").astype(np.float64)
    out = np.stack([fn(padded[..., c], kernel) for c in range(padded.shape[-1])], axis=-1)
    return _clip(out[r:-r, r:-r])


def wiener_nonblind(degraded, info):
    """Wiener deconvolution per channel. Non-blind: given the true kernel."""
    return _per_channel_padded(lambda ch, k: restoration.wiener(ch, k, balance=WIENER_BALANCE, clip=False),
                               degraded, info["kernel"])


def richardson_lucy_nonblind(degraded, info):
    """Richardson-Lucy deconvolution, 30 iterations per channel. Non-blind: given the true kernel."""
    return _per_channel_padded(lambda ch, k: restoration.richardson_lucy(ch, k, num_iter=RL_ITERATIONS),
                               degraded, info["kernel"])


def unsharp(degraded, info):
    """Unsharp masking, image + (image - Gaussian(image, 2 px)): blind, kernel not used. Written out because
    skimage.filters.unsharp_mask returned NaNs on some float inputs (scikit-image 0.26)."""
    smooth = ndimage.gaussian_filter(degraded, sigma=(2, 2, 0), mode="reflect")
    return _clip(degraded + 1.0 * (degraded - smooth))


# ------------------------------------------------------------------------------------------- derain

def median5x5(degraded, info):
    """5x5 median per channel: removes streaks thinner than about two pixels."""
    return _clip(ndimage.median_filter(degraded, size=(5, 5, 1), mode="reflect"))


# BM3D's time grows with the pixels: about 2 s for 128 x 128 on one core of the development machine (4 s with both
# cores busy), 8-10 s at 256 x 256. Interactive use stays under a few seconds below this many pixels
# ($DRCNET_BM3D_MAX_PIXELS changes it, e.g. on a faster CPU). The evaluation (drcnet.evaluate) has no limit.
MAX_PIXELS = {"bm3d": int(os.environ.get("DRCNET_BM3D_MAX_PIXELS", 128 * 128))}


def size_limit_note(name: str, shape) -> str | None:
    """Why method `name` is not run on an image of this shape (it is over the method's MAX_PIXELS), or None."""
    limit = MAX_PIXELS.get(name)
    h, w = shape[:2]
    if limit is None or h * w <= limit:
        return None
    return (f"{name} skipped: {w}x{h} = {h * w:,} pixels is over its limit of {limit:,} pixels, which keeps it under "
            "a few seconds on a CPU (its time grows with the pixels); compare a smaller crop to see it")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


BASELINES: dict[str, dict] = {
    "denoise": {"nlm": nl_means, "tv_chambolle": tv_chambolle,
                **({"wavelet_bayes": wavelet_bayes} if _importable("pywt") else {}),
                **({"bm3d": bm3d_rgb} if _importable("bm3d") else {})},
    "deblur": {"wiener_nonblind": wiener_nonblind, "richardson_lucy_nonblind": richardson_lucy_nonblind,
               "unsharp": unsharp},
    "derain": {"median5x5": median5x5},
}
