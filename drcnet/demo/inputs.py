"""What every tab works on: the input loaded (and checked), optionally degraded with the project's synthetic
degradations or paired with its clean reference, optionally shrunk; prepared inputs are cached (PreparedCache)."""
from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np
from PIL import Image

from drcnet.core.metrics import psnr, ssim
from drcnet.demo.examples import known_degradation
from drcnet.demo.files import mtime
from drcnet.demo.messages import DemoError, NoTaskSelected, check_task
from drcnet.demo.reading import check_usable, load
from drcnet.demo.settings import InputSettings, Limits
from drcnet.demo.upload import no_task_message
from drcnet.serve.imageio import LoadedImage


@dataclass
class Prepared:
    """What every tab works on: the degraded input, the clean reference when known, and how it was made."""
    degraded: np.ndarray                     # float32 HxWx3 in [0, 1]
    clean: np.ndarray | None
    info: dict = field(default_factory=dict)  # degrade()'s info (sigma, kernel ...) when synthetic
    loaded: LoadedImage | None = None
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)


class PreparedCache(dict):
    """Prepared inputs by (input, its mtime, task, settings, size); at most `size` kept."""
    def __init__(self, size: int = 8):
        super().__init__()
        self.size = size

    def keep(self, key, prepared: Prepared) -> Prepared:
        if len(self) > self.size:
            self.clear()
        self[key] = prepared
        return prepared


def resize_max(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb
    s = max_side / max(h, w)
    size = (max(8, round(w * s)), max(8, round(h * s)))
    return np.asarray(to_pil(rgb).resize(size, Image.LANCZOS), np.float32) / 255.0   # float resampling via 8 bits


def prepare(image, task: str, settings: InputSettings = InputSettings(), *, max_side: int | None = None,
            cache: PreparedCache | None = None, max_pixels: int = Limits.max_pixels) -> Prepared:
    """Load the input (and reference), optionally degrade a clean photo with the project's synthetic
    degradations (fixed seed: the same settings give the same picture), optionally shrink to max_side.

    settings.synthesize: `image` is the clean photo; the degraded input is made from it, the clean one is the
    reference. Otherwise `image` is already degraded and settings.reference (optional) its clean version.
    task None or "" (no task selected, as after a photo that looks clean): a DemoError that asks which task to
    run, repeating the clean-photo warning (NoTaskSelected: the page shows it as a warning); nothing is loaded or
    run."""
    if task in (None, ""):
        raise NoTaskSelected(no_task_message(image, settings.synthesize))
    check_task(task)
    key = (str(image), mtime(image), task, settings.cache_key(), max_side)
    if cache is not None and key in cache:
        return cache[key]
    loaded = load(image, "input image", max_pixels)
    check_usable(loaded)
    notes = []
    if loaded.alpha is not None:
        notes.append("alpha channel kept aside (restored on RGB, re-attached on download)")
    if loaded.bit_depth == 16:
        notes.append("16-bit input")
    rgb = resize_max(loaded.rgb, max_side)
    if rgb.shape != loaded.rgb.shape:
        notes.append(f"downscaled to {rgb.shape[1]}x{rgb.shape[0]} for interactive speed")
    if settings.synthesize:
        degraded, info = _degrade_synthetic(rgb, task, settings)
        prepared = Prepared(degraded, rgb, info, loaded, True, notes)
    else:
        info = (known_degradation(image, task) or {}) if rgb.shape == loaded.rgb.shape else {}
        clean = _load_reference(settings.reference, loaded, rgb, max_side, max_pixels)
        prepared = Prepared(rgb, clean, info, loaded, False, notes)
    return prepared if cache is None else cache.keep(key, prepared)


def _degrade_synthetic(clean: np.ndarray, task: str, settings: InputSettings) -> tuple[np.ndarray, dict]:
    from drcnet.data.degrade import degrade
    degraded, info = degrade(clean, task, np.random.default_rng(int(settings.seed)), **settings.degradation(task))
    return np.clip(degraded, 0, 1).astype(np.float32), info


def _load_reference(reference, loaded: LoadedImage, rgb: np.ndarray, max_side, max_pixels) -> np.ndarray | None:
    if reference in (None, ""):
        return None
    ref = load(reference, "reference image", max_pixels)
    ref_rgb = resize_max(ref.rgb, max_side)
    if ref_rgb.shape != rgb.shape:
        raise DemoError(f"the reference {ref.source_name} is {ref.rgb.shape[1]}x{ref.rgb.shape[0]} but "
                        f"the input is {loaded.rgb.shape[1]}x{loaded.rgb.shape[0]}: they must match")
    return ref_rgb


def to_pil(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def quality(restored: np.ndarray, clean: np.ndarray | None, task: str) -> dict | None:
    """PSNR / SSIM against the clean reference (BT.601 Y for deraining, the paper's convention)."""
    if clean is None:
        return None
    y = task == "derain"
    return {"psnr": psnr(restored, clean, y_channel=y), "ssim": ssim(restored, clean, y_channel=y)}
