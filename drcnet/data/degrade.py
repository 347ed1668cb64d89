"""Synthetic degradations: noise, rain streaks, camera-shake blur.

Every function takes a clean float32 H x W x 3 image in [0, 1] and a numpy Generator, and draws all of its
randomness from that Generator: the same seed gives the same degraded image, bit for bit.

    degrade(clean, "denoise", rng)                   # training: sigma ~ U[0, 55] / 255
    degrade(clean, "denoise", rng, sigma=25)          # fixed sigma (0-255 units)
    degrade(clean, "derain", rng, setting="heavy")
    degrade(clean, "deblur", rng, size=21)            # or kernel=<2-D array>
    degrade(clean, "deblur", rng, sizes=KernelSizes.parse("7-17:0.7,19-31:0.3"))   # a training mixture
    for s in eval_settings("deblur"): degrade(clean, "deblur", rng, **s)   # "name" is ignored
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from drcnet.core.tasks import TASKS

TRAIN_SIGMA_MAX = 55.0          # training noise level: sigma ~ U[0, 55] in 0-255 units
EVAL_SIGMAS = (15, 25, 50)
KERNEL_SIZES = (13, 31)         # the default training range of motion kernel sizes (odd sizes only)
KERNEL_LIMITS = (3, 31)         # any kernel: 31 at most, as the deblur crops' 16 px context and the GPU path's
                                # 31 x 31 kernel tensors assume
TRAIN_KERNELS = "%d-%d" % KERNEL_SIZES   # the default training mixture: one range, every odd size equally likely
BLUR_NOISE = 0.01               # Gaussian noise after the blur, as in the GoPro-style synthetic protocol


# ----------------------------------------------------------------------------------------------- noise

def add_noise(clean: np.ndarray, sigma: float, rng: np.random.Generator, poisson: float | None = None):
    """Additive white Gaussian noise of standard deviation sigma/255; not clipped, the usual AWGN benchmark
    protocol (clipping would lower the effective sigma in dark and bright areas).

    poisson: optional peak value for Poisson-Gaussian noise: the image is first replaced by
    Poisson(clean * peak) / peak (shot noise, stronger in bright areas; a smaller peak is noisier), then the
    Gaussian part is added."""
    image = clean.astype(np.float32)
    if poisson is not None:
        image = (rng.poisson(image * poisson) / poisson).astype(np.float32)
    return image + rng.normal(0.0, sigma / 255.0, clean.shape).astype(np.float32)


# ------------------------------------------------------------------------------------------------ rain

# Ranges (lo, hi) are drawn uniformly per layer. density: fraction of pixels that seed a streak; length and
# width in pixels; brightness: streak intensity before screen blending; angle in degrees from vertical,
# shared by the layers of one image up to `angle_jitter` (rain falls in one direction).
RAIN_PRESETS: dict[str, dict] = {
    "light": dict(layers=(1, 2), density=(0.002, 0.005), length=(10, 25), width=(0.5, 1.0),
                  brightness=(0.35, 0.6), angle=(-20, 20), angle_jitter=4),
    "heavy": dict(layers=(2, 3), density=(0.003, 0.006), length=(20, 40), width=(0.8, 1.5),
                  brightness=(0.4, 0.7), angle=(-30, 30), angle_jitter=6),
}
HAZE = dict(transmission=(0.75, 0.9), airlight=(0.75, 0.95))   # heavy rain's veiling: I = J t + A (1 - t)


def line_kernel(length: float, angle_deg: float, width: float) -> np.ndarray:
    """A normalised anti-aliased line of the given length and angle (0 = vertical), blurred across by width."""
    size = int(np.ceil(length)) | 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    t = np.linspace(-length / 2, length / 2, 4 * size)
    a = np.deg2rad(angle_deg)
    ys, xs = c + t * np.cos(a), c + t * np.sin(a)
    _splat(k, ys, xs)
    k = ndimage.gaussian_filter(k, width / 2)
    return k / k.sum()


def rain_layer(shape, rng: np.random.Generator, angle: float, p: dict) -> np.ndarray:
    """One layer of streaks: sparse random seeds smeared along a line (a motion-blurred noise field)."""
    h, w = shape
    seeds = (rng.random((h, w)) < rng.uniform(*p["density"])) * rng.uniform(0.5, 1.0, (h, w))
    length = rng.uniform(*p["length"])
    k = line_kernel(length, angle + rng.uniform(-p["angle_jitter"], p["angle_jitter"]), rng.uniform(*p["width"]))
    streaks = signal.fftconvolve(seeds, k, mode="same")
    # The normalised kernel spreads a seed over the streak; rescale so a streak's core reaches `brightness`.
    return np.clip(streaks / (k.max() + 1e-8) * rng.uniform(*p["brightness"]), 0.0, 1.0)


def add_rain(clean: np.ndarray, rng: np.random.Generator, setting: str = "light", haze: bool = False):
    """Screen-blend a few streak layers onto the image: out = 1 - (1 - clean)(1 - rain), which only brightens
    (as light scattered by drops does) and stays in [0, 1]. haze=True also veils the result with airlight."""
    if setting not in RAIN_PRESETS:
        raise ValueError(f"unknown rain setting {setting!r}; choose one of {sorted(RAIN_PRESETS)}")
    p = RAIN_PRESETS[setting]
    angle = rng.uniform(*p["angle"])
    rain = np.zeros(clean.shape[:2], np.float32)
    for _ in range(rng.integers(p["layers"][0], p["layers"][1] + 1)):
        rain = 1.0 - (1.0 - rain) * (1.0 - rain_layer(clean.shape[:2], rng, angle, p))
    out = 1.0 - (1.0 - clean) * (1.0 - rain[..., None])
    if haze:
        t, airlight = rng.uniform(*HAZE["transmission"]), rng.uniform(*HAZE["airlight"])
        out = out * t + airlight * (1.0 - t)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------ blur

@dataclass(frozen=True)
class KernelSizes:
    """A mixture of odd kernel-size ranges for training draws, e.g. "7-17:0.7,19-31:0.3": 70 % of kernels have a
    size drawn uniformly among the odd sizes 7..17, 30 % among 19..31. "13-31" (weight 1) is the default.

    A single range draws exactly as the original fixed range did (one rng.integers call), so the default keeps
    every training stream bit for bit; a mixture first draws rng.random() to pick its range. (A project
    deviation from the paper, which trains on GoPro's real blur: see the deblur recipe.)"""
    ranges: tuple[tuple[int, int], ...]
    weights: tuple[float, ...]

    @classmethod
    def parse(cls, spec: "str | KernelSizes") -> "KernelSizes":
        if isinstance(spec, KernelSizes):
            return spec
        ranges, weights = [], []
        for part in str(spec).replace(" ", "").split(","):
            span, _, weight = part.partition(":")
            lo, _, hi = span.partition("-")
            try:
                lo, hi = int(lo), int(hi or lo)
                weight = float(weight) if weight else 1.0
            except ValueError:
                raise ValueError(f"bad blur kernel range {part!r} in {spec!r}: write LO-HI[:WEIGHT], e.g. "
                                 f"'7-17:0.7,19-31:0.3'") from None
            if lo % 2 == 0 or hi % 2 == 0 or not KERNEL_LIMITS[0] <= lo <= hi <= KERNEL_LIMITS[1]:
                raise ValueError(f"blur kernel range {part!r}: odd sizes LO <= HI within {KERNEL_LIMITS}")
            if not weight > 0:
                raise ValueError(f"blur kernel range {part!r}: the weight must be positive")
            ranges.append((lo, hi))
            weights.append(weight)
        total = sum(weights)
        return cls(tuple(ranges), tuple(w / total for w in weights))

    def draw(self, rng: np.random.Generator) -> int:
        lo, hi = self.ranges[0]
        if len(self.ranges) > 1:
            u, acc = rng.random(), 0.0
            for (lo, hi), weight in zip(self.ranges, self.weights):
                acc += weight
                if u < acc:
                    break
        return int(rng.integers(lo // 2, hi // 2 + 1)) * 2 + 1

    def __str__(self) -> str:
        if len(self.ranges) == 1:
            return "%d-%d" % self.ranges[0]
        return ",".join(f"{lo}-{hi}:{w:g}" for (lo, hi), w in zip(self.ranges, self.weights))


def motion_kernel(rng: np.random.Generator, size: int | None = None,
                  sizes: "KernelSizes | str" = TRAIN_KERNELS) -> np.ndarray:
    """A random camera-shake kernel: a 2-D random walk with inertia (the velocity changes slowly, so paths
    curve rather than jitter), scaled to span 40-95% of the kernel, rasterised with bilinear splats and
    normalised to sum 1. size: odd, 3-31; None draws one from `sizes` (a KernelSizes or its spec)."""
    if size is None:
        size = KernelSizes.parse(sizes).draw(rng)
    if size % 2 == 0 or not KERNEL_LIMITS[0] <= size <= KERNEL_LIMITS[1]:
        raise ValueError(f"kernel size must be odd and within {KERNEL_LIMITS}, got {size}")
    steps, inertia = 200, rng.uniform(0.85, 0.98)
    velocity = np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
    path = np.zeros((steps, 2))
    for i in range(1, steps):
        velocity = inertia * velocity + (1 - inertia) * rng.normal(0, 1.5, 2)
        velocity /= max(np.linalg.norm(velocity), 1e-8)
        path[i] = path[i - 1] + velocity
    span = np.ptp(path, axis=0).max()
    path = (path - (path.max(0) + path.min(0)) / 2) * (rng.uniform(0.4, 0.95) * (size - 1) / span)
    k = np.zeros((size, size), np.float32)
    _splat(k, path[:, 0] + size // 2, path[:, 1] + size // 2)
    return k / k.sum()


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with the kernel; reflect boundaries (padding, then an FFT 'valid' convolution)."""
    r = kernel.shape[0] // 2
    padded = np.pad(image, ((r, r), (r, r), (0, 0)), mode="reflect")
    return signal.fftconvolve(padded, kernel[..., None], mode="valid", axes=(0, 1)).astype(np.float32)


def motion_blur(clean: np.ndarray, rng: np.random.Generator, size: int | None = None,
                kernel: np.ndarray | None = None, noise: float = BLUR_NOISE,
                sizes: "KernelSizes | str" = TRAIN_KERNELS):
    """Blur with a random (or given) motion kernel, add Gaussian noise of std `noise`, round to 8 bits.
    Returns (blurred, kernel)."""
    if kernel is None:
        kernel = motion_kernel(rng, size, sizes)
    blurred = blur(clean, kernel) + rng.normal(0.0, noise, clean.shape).astype(np.float32)
    return quantise(blurred), kernel


# ------------------------------------------------------------------------------------------ one entry

def degrade(clean: np.ndarray, task: str, rng: np.random.Generator, **settings):
    """(degraded, info) for one task. Unspecified settings are drawn at random (training).

    denoise: sigma (0-255; default U[0, 55]), poisson (peak, default None)   info: sigma, poisson
    derain:  setting ("light"/"heavy"; default either), haze (default False)  info: setting, haze
    deblur:  size (odd 3-31) or kernel (2-D array, sum 1), noise (0.01),     info: kernel, noise
             sizes (the KernelSizes a size is drawn from; default 13-31)
    A "name" entry (from eval_settings) is ignored."""
    settings = {k: v for k, v in settings.items() if k != "name"}
    clean = np.asarray(clean, np.float32)
    if task == "denoise":
        sigma = settings.pop("sigma", None)
        sigma = float(rng.uniform(0, TRAIN_SIGMA_MAX)) if sigma is None else float(sigma)
        poisson = settings.pop("poisson", None)
        _no_more(settings, task)
        return add_noise(clean, sigma, rng, poisson), {"task": task, "sigma": sigma, "poisson": poisson}
    if task == "derain":
        setting = settings.pop("setting", None) or str(rng.choice(sorted(RAIN_PRESETS)))
        haze = bool(settings.pop("haze", False))
        _no_more(settings, task)
        return add_rain(clean, rng, setting, haze), {"task": task, "setting": setting, "haze": haze}
    if task == "deblur":
        size, kernel = settings.pop("size", None), settings.pop("kernel", None)
        noise = float(settings.pop("noise", BLUR_NOISE))
        sizes = settings.pop("sizes", TRAIN_KERNELS)
        _no_more(settings, task)
        kernel = None if kernel is None else np.asarray(kernel)
        blurred, kernel = motion_blur(clean, rng, size, kernel, noise, sizes)
        return blurred, {"task": task, "kernel": kernel, "noise": noise}
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


EVAL_KERNELS = ((13, 101), (19, 102), (25, 103), (31, 104))   # (size, seed) of the fixed evaluation kernels


def eval_settings(task: str) -> list[dict]:
    """The fixed, named evaluation settings of a task; pass each as degrade(clean, task, rng, **setting)."""
    if task == "denoise":
        return [{"name": f"sigma{s}", "sigma": s} for s in EVAL_SIGMAS]
    if task == "derain":
        return [{"name": s, "setting": s} for s in ("light", "heavy")]
    if task == "deblur":
        return [{"name": f"kernel{size}_seed{seed}", "kernel": motion_kernel(np.random.default_rng(seed), size)}
                for size, seed in EVAL_KERNELS]
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


# ---------------------------------------------------------------------------------------------- helpers

def quantise(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to 8 bits, as a saved photo would be."""
    return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def _splat(canvas: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> None:
    """Add unit mass at each (y, x), split bilinearly over the four neighbouring pixels."""
    h, w = canvas.shape
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        np.add.at(canvas, (yy[ok], xx[ok]), wgt[ok])


def _no_more(settings: dict, task: str) -> None:
    if settings:
        raise TypeError(f"unknown {task} settings: {sorted(settings)}")
