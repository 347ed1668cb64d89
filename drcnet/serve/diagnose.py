"""What is wrong with a photo: noise, rain streaks, motion blur, or nothing the models fix.

    from drcnet.serve.diagnose import diagnose
    d = diagnose(rgb)              # H x W (x 3): uint8, uint16 or float in [0, 1], as the engine takes it
    d.task, d.finding              # "denoise", "noise, sigma about 22: denoise"

Four measures, each cheap (about 0.1 s at 512 px on one CPU core; larger photos are centre-cropped to 512 px,
which keeps the pixel scale that noise, streaks and blur live at):

- **noise**: scikit-image's wavelet estimate of the Gaussian noise sigma (`estimate_sigma`, 0-255 units).
  A photo is noisy when sigma is large, or when it is a sizeable fraction of the mean brightness (low light:
  the Hubble deep field's dark sky carries sigma about 3.5 on a mean of 19, clearly visible).
- **blur** (detail over noise): the mean white top-hat (the image minus its 5x5 grey opening: thin bright detail)
  divided by the noise sigma. A sharp photo has several times more fine detail than noise; a blurred one has lost
  its fine detail, so what the top-hat still finds is about the size of its noise.
- **rain** (bright oriented streaks): rain adds thin bright streaks, all at about one angle near vertical.
  The directional energy of the white top-hat (bright thin structure) and of the black top-hat (dark thin
  structure) is read from their power spectra through a line filter of 15 px at 18 angles; rain raises the
  white one's peak within 40 degrees of vertical above its median over angles, and not the black one's
  (a clean photo's vertical structure, a rocket's gantry say, is as much dark as bright). The directional energy
  of the bright-minus-dark residual must also peak near vertical.
- **directional blur** (a photo smeared along one line: a box or linear motion blur): such a blur multiplies the
  spectrum by a sinc whose zeros are parallel lines, 1/length apart, across the blur's direction. The log
  spectrum then repeats along that direction, so its cepstrum (the inverse transform of the log spectrum) has a
  deep negative peak at the blur's length and angle. It is read from the log power spectrum averaged over
  half-overlapping 128 px tiles (Welch's method), weighted down to nothing at 0.3 cycles/px (higher up, 8-bit
  rounding and JPEG fill the zeros), as the cepstrum's deepest value 5-32 px from its origin, below the median
  there, in robust standard deviations (MAD): sharp photos score 2-7, box and linear blurs of 9-21 px 10-50.
  It catches what the detail measure misses: a noise-free blur along one direction keeps the detail across it,
  and the noise estimate falls with the detail, so detail over noise stays high (a 15 px horizontal box blur of
  a sharp photo: 2.4x its noise).

The thresholds were set on the project's test photos with every task's evaluation settings
(`confusion_matrix`, docs/diagnose.md); they are the project's own, not from a paper.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drcnet.data.datasets import as_array, centre_crop, named_images
from drcnet.core.tasks import TASKS

MAX_SIDE = 512              # larger photos are centre-cropped to this before measuring
NOISE_SIGMA = 10.0          # sigma (0-255) from which a photo counts as noisy ...
LOW_LIGHT_RATIO = 0.1       # ... or sigma of at least this fraction of the mean brightness (and >= LOW_LIGHT_MIN)
LOW_LIGHT_MIN = 2.0
BLUR_DETAIL = 2.0           # detail / noise below this: blurred
RAIN_ASYMMETRY = 0.1        # white-minus-black directional peak near vertical above this ...
RAIN_RESIDUAL = 0.5         # ... and the bright residual's directional peak above this: rain
STREAK_LENGTH = 15          # px, the line filter of the directional energy
DIRECTIONAL_BLUR = 12.0     # the cepstrum's dip (robust standard deviations) from which a photo is blurred along one
                            # direction ...
BLUR_NOT_RAIN = 20.0        # ... and from which it is, even where the rain cue fires (a blur along or near the
                            # vertical smears bright highlights into streaks; rain itself scores up to about 19)
CEPSTRUM_TILE = 128         # px: the tiles whose power spectra are averaged (half-overlapping)
CEPSTRUM_FMAX = 0.3         # cycles/px: the log spectrum is weighted by 1 - f / CEPSTRUM_FMAX (0 beyond)
CEPSTRUM_RADII = (5, 32)    # px: the blur lengths looked for
ANGLES = np.arange(-90, 90, 10)             # degrees from vertical
NEAR_VERTICAL = np.abs(ANGLES) <= 40        # rain falls within 40 degrees of vertical
CLEAN = "clean"             # the label of a photo that needs none of the tasks


@dataclass
class Diagnosis:
    task: str | None            # "denoise" | "derain" | "deblur", None when the photo looks clean
    finding: str                # one sentence for the page: "noise, sigma about 22: denoise"
    scores: dict = field(default_factory=dict)   # measure(): sigma, brightness, detail, rain_*, directional_blur ...

    @property
    def label(self) -> str:
        return self.task or CLEAN


def unit_float(image: np.ndarray) -> np.ndarray:
    """The image as float32 in [0, 1] the way the engine reads it: integers scaled by their type's maximum (a uint8
    photo by 255, a uint16 one by 65535), floats as they are; an alpha channel dropped. The measures' thresholds
    are in [0, 1] units (sigma and brightness reported x 255), so an 8-bit photo read as 0-255 looked noisy."""
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float32) / np.iinfo(image.dtype).max
    elif not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"unsupported image dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] in (1, 2):          # grey (+ alpha): one plane
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[2] == 4:             # RGBA: the colour channels
        image = image[..., :3]
    return image.astype(np.float32, copy=False)


def grey(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32)
    return rgb if rgb.ndim == 2 else rgb[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)


def noise_sigma(rgb: np.ndarray) -> float:
    """scikit-image's wavelet (median absolute deviation) estimate of the Gaussian noise, 0-255 units."""
    from skimage.restoration import estimate_sigma
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim == 2:
        return float(estimate_sigma(rgb)) * 255
    return float(estimate_sigma(rgb, channel_axis=-1, average_sigmas=True)) * 255


def top_hats(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(white, black) top-hats with a 5x5 square: thin bright and thin dark structure."""
    from scipy import ndimage
    return g - ndimage.grey_opening(g, size=(5, 5)), ndimage.grey_closing(g, size=(5, 5)) - g


def directional_energy(x: np.ndarray, length: float = STREAK_LENGTH, angles=ANGLES) -> np.ndarray:
    """The energy of x after averaging along a line of `length` px at each angle (degrees from vertical),
    computed in the frequency domain: the line's transfer function is sinc(length * f . direction)."""
    spectrum = np.abs(np.fft.rfft2(x - x.mean())) ** 2
    fy = np.fft.fftfreq(x.shape[0])[:, None]
    fx = np.fft.rfftfreq(x.shape[1])[None, :]
    out = []
    for a in np.deg2rad(angles):
        along = fy * np.cos(a) + fx * np.sin(a)       # a line at angle a runs along (cos a, sin a) in (y, x)
        out.append(float((spectrum * np.sinc(length * along) ** 2).sum()))
    return np.array(out)


def relative_peaks(energy: np.ndarray) -> np.ndarray:
    """Each angle's energy over the median over all angles, minus 1: 0 for no preferred direction."""
    return energy / max(float(np.median(energy)), 1e-20) - 1


def mean_power_spectrum(g: np.ndarray, tile: int = CEPSTRUM_TILE) -> np.ndarray:
    """The power spectrum (rfft2 layout, tile x (tile // 2 + 1)) of g averaged over half-overlapping,
    Hann-windowed tiles of `tile` px (g's own size along a side shorter than that): Welch's method. A blur's
    spectral zeros are in every tile, the speckle of a single periodogram averages away."""
    h, w = g.shape
    th, tw = min(tile, h), min(tile, w)
    ys = sorted({*range(0, h - th + 1, max(th // 2, 1)), h - th})
    xs = sorted({*range(0, w - tw + 1, max(tw // 2, 1)), w - tw})
    tiles = np.stack([g[y:y + th, x:x + tw] for y in ys for x in xs]).astype(np.float64)
    tiles -= tiles.mean(axis=(1, 2), keepdims=True)
    tiles *= np.outer(np.hanning(th), np.hanning(tw))
    return (np.abs(np.fft.rfft2(tiles)) ** 2).mean(axis=0)


def directional_blur(g: np.ndarray) -> tuple[float, float, float]:
    """(score, length in px, angle in degrees from horizontal, 0-180) of a blur along one direction: how far the
    cepstrum of the tile-averaged, low-pass weighted log power spectrum dips below its median, CEPSTRUM_RADII px
    from its origin, in robust standard deviations (MAD), and where (the blur's length and direction).
    (0, 0, 0) for a photo too small to tell."""
    h, w = min(g.shape[0], CEPSTRUM_TILE), min(g.shape[1], CEPSTRUM_TILE)
    rmin, rmax = CEPSTRUM_RADII[0], min(CEPSTRUM_RADII[1], h // 2 - 1, w // 2 - 1)
    if rmax <= rmin:
        return 0.0, 0.0, 0.0
    power = mean_power_spectrum(g)
    f = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :])
    floor = 1e-6 * h * w                # about 5x the power of 8-bit rounding: how deep a zero can be
    cepstrum = np.fft.irfft2(np.log(power + floor) * np.clip(1 - f / CEPSTRUM_FMAX, 0, None), s=(h, w))
    dy, dx = np.fft.fftfreq(h)[:, None] * h, np.fft.fftfreq(w)[None, :] * w
    r = np.hypot(dy, dx)
    ring = (r >= rmin) & (r <= rmax)
    values = cepstrum[ring]
    median = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - median)))
    iy, ix = np.unravel_index(np.argmin(np.where(ring, cepstrum, np.inf)), cepstrum.shape)
    y, x = float(dy[iy, 0]), float(dx[0, ix])
    angle = float(np.degrees(np.arctan2(-y, x))) % 180          # rows grow downwards
    return (median - float(values.min())) / max(mad, 1e-12), float(np.hypot(y, x)), angle


def measure(rgb: np.ndarray) -> dict:
    """The scores diagnose() decides on (see the module docstring); any image dtype the engine takes (unit_float)."""
    rgb = centre_crop(unit_float(rgb), MAX_SIDE)
    g = grey(rgb)
    sigma = noise_sigma(rgb)
    white, black = top_hats(g)
    rw, rb = relative_peaks(directional_energy(white)), relative_peaks(directional_energy(black))
    residual = relative_peaks(directional_energy(np.maximum(white - black, 0)))
    smeared, length, angle = directional_blur(g)
    return {"sigma": sigma,
            "brightness": float(g.mean()) * 255,
            "detail": float(white.mean()) * 255 / max(sigma, 0.5),
            "rain_asymmetry": float(rw[NEAR_VERTICAL].max() - rb[NEAR_VERTICAL].max()),
            "rain_residual": float(residual[NEAR_VERTICAL].max()),
            "directional_blur": smeared,
            "blur_length": length,
            "blur_angle": angle}


def decide(s: dict) -> tuple[str | None, str]:
    """(task or None, finding) from measure()'s scores: noise first (it hides everything else), then blur
    (which leaves no thin streaks to find), then rain, unless the photo is clearly smeared along one direction
    (a blur near the vertical draws bright streaks too), then a blur along one direction."""
    sigma = s["sigma"]
    if sigma >= NOISE_SIGMA or (sigma >= LOW_LIGHT_MIN and sigma >= LOW_LIGHT_RATIO * s["brightness"]):
        low = " (low light)" if sigma < NOISE_SIGMA else ""
        return "denoise", f"noise, sigma about {sigma:.0f}{low}: denoise"
    if s["detail"] < BLUR_DETAIL:
        return "deblur", f"blurred, fine detail about {s['detail']:.1f}x its noise: deblur"
    smeared = s.get("directional_blur", 0.0)
    rain = s["rain_asymmetry"] > RAIN_ASYMMETRY and s["rain_residual"] > RAIN_RESIDUAL
    if smeared >= (BLUR_NOT_RAIN if rain else DIRECTIONAL_BLUR):
        return "deblur", (f"blurred along one direction (about {s['blur_length']:.0f} px, "
                          f"{direction_words(s['blur_angle'])}): deblur")
    if rain:
        return "derain", "thin bright streaks at one angle: derain"
    return None, (f"looks clean (noise sigma about {sigma:.0f}, fine detail {s['detail']:.1f}x its noise, no "
                  "streaks, no blur along one direction): none of the tasks is likely to improve it")


def direction_words(angle: float) -> str:
    """A direction in degrees from horizontal (0-180) as the finding says it: "horizontal", "vertical", or
    "at 45 degrees from horizontal" (counter-clockwise)."""
    angle = angle % 180
    if min(angle, 180 - angle) <= 10:
        return "horizontal"
    if abs(angle - 90) <= 10:
        return "vertical"
    return f"at {angle:.0f} degrees from horizontal"


def diagnose(rgb: np.ndarray) -> Diagnosis:
    """Which task fits this photo (None: it looks clean), a sentence saying why, and the scores. rgb: H x W, H x W x 1
    or H x W x 3 (an alpha channel is ignored); uint8, uint16 or float in [0, 1]: the same picture gets the same
    verdict in each."""
    scores = measure(rgb)
    task, finding = decide(scores)
    assert task is None or task in TASKS
    return Diagnosis(task, finding, scores)


# ---------------------------------------------------------------- measured on degraded test photos

BLUR_LENGTHS = (9, 15, 21)      # px: the box and linear blurs the matrix adds to the evaluation's camera shake
ROWS = (("denoise", "denoise"), ("derain", "derain"), ("deblur: camera shake", "deblur"), ("deblur: box", "deblur"),
        ("deblur: linear", "deblur"), ("clean: photo", CLEAN), ("clean: sky", CLEAN), ("clean: night", CLEAN))


def box_kernel(length: int) -> np.ndarray:
    """A horizontal box blur of `length` px: each pixel the mean of `length` neighbours along its row."""
    k = np.zeros((length, length), np.float32)
    k[length // 2] = 1.0 / length
    return k


def linear_kernel(length: int, angle: float) -> np.ndarray:
    """A linear motion blur of `length` px at `angle` degrees from horizontal (counter-clockwise): an
    anti-aliased line (drcnet.data.degrade.line_kernel, 0.5 px wide)."""
    from drcnet.data.degrade import line_kernel
    return line_kernel(length, angle - 90, 0.5)          # line_kernel counts its angles from vertical


def sky_photo(rgb: np.ndarray, rng: np.random.Generator, fraction: float = 0.55) -> np.ndarray:
    """A clean photo of another kind, with a smooth sky: the top `fraction` of the photo replaced by a clear
    sky, a gradient from deep blue at the top to pale near the horizon with a slight sideways tint and sensor
    noise of 1 grey level (0-255); rounded to 8 bits."""
    from drcnet.data.degrade import quantise
    h, w = rgb.shape[:2]
    top = int(round(h * fraction))
    y = np.linspace(0, 1, top)[:, None, None] ** 0.8
    x = np.linspace(-1, 1, w)[None, :, None]
    zenith, horizon = np.array([0.18, 0.36, 0.70]), np.array([0.70, 0.82, 0.93])
    out = np.array(rgb[..., :3], np.float32)
    out[:top] = zenith + (horizon - zenith) * y + 0.03 * x * (1 - y) + rng.normal(0, 1 / 255, (top, w, 3))
    return quantise(out)


def night_photo(rgb: np.ndarray, rng: np.random.Generator, exposure: float = 0.25, gamma: float = 2.2) -> np.ndarray:
    """A clean photo of another kind, a night scene: exposure * rgb ** gamma (a quarter of the light, the
    mid-tones pushed into the dark: mean brightness 5-20 of 255) with sensor noise of 0.5 grey level; rounded to
    8 bits. Dark, but not noisy enough for the low-light rule."""
    from drcnet.data.degrade import quantise
    rgb = np.clip(np.asarray(rgb[..., :3], np.float32), 0, 1)
    return quantise(exposure * rgb ** gamma + rng.normal(0, 0.5 / 255, rgb.shape))


def row_of(true: str, setting: str) -> str:
    """The matrix row of an item: its true label, split by the kind of blur or of clean photo."""
    if true == "deblur":
        return ("deblur: box" if setting.startswith("box") else "deblur: linear" if setting.startswith("line")
                else "deblur: camera shake")
    if true == CLEAN:
        return {"sky": "clean: sky", "night": "clean: night"}.get(setting, "clean: photo")
    return true


def confusion_matrix(images, max_side: int = 256, seed: int = 0, kinds: bool = True) -> dict:
    """Diagnose every photo clean and degraded with every task's evaluation settings (drcnet.data.datasets.FixedEvalSet,
    the evaluation's centre crops; rounded to 8 bits as an uploaded file would be), and with kinds=True also:
    box blurs (horizontal) and linear motion blurs (at an angle drawn per photo and length, uniform over
    0-180 degrees) of BLUR_LENGTHS px, without noise, and each photo as a smooth-sky photo and a night scene
    (sky_photo, night_photo).

    images: anything FixedEvalSet accepts ({name: array}, a folder). Returns {"labels", "matrix"
    (true label -> predicted label -> count), "rows" (ROWS' labels -> predicted label -> count), "accuracy",
    "items": [(true, predicted, setting, image)]}."""
    import zlib

    from drcnet.data.datasets import FixedEvalSet
    from drcnet.data.degrade import blur, quantise
    labels = [*TASKS, CLEAN]
    items = []
    for task in TASKS:
        for it in FixedEvalSet(images, task, seed=seed, max_side=max_side):
            items.append((task, diagnose(quantise(it["degraded"])).label, it["setting"], it["image"]))
    for name, src in named_images(images):
        photo = centre_crop(as_array(src), max_side)[..., :3]
        items.append((CLEAN, diagnose(quantise(photo)).label, "clean", name))
        if not kinds:
            continue
        for length in BLUR_LENGTHS:
            items.append(("deblur", diagnose(quantise(blur(photo, box_kernel(length)))).label, f"box{length}", name))
            rng = np.random.default_rng([seed, zlib.crc32(f"line{length}".encode()), zlib.crc32(name.encode())])
            angle = round(float(rng.uniform(0, 180)))
            items.append(("deblur", diagnose(quantise(blur(photo, linear_kernel(length, angle)))).label,
                          f"line{length}@{angle}", name))
        rng = np.random.default_rng([seed, zlib.crc32(b"other kinds"), zlib.crc32(name.encode())])
        items.append((CLEAN, diagnose(sky_photo(photo, rng)).label, "sky", name))
        items.append((CLEAN, diagnose(night_photo(photo, rng)).label, "night", name))
    matrix = {t: dict.fromkeys(labels, 0) for t in labels}
    rows = {row: dict.fromkeys(labels, 0) for row, _ in ROWS}
    for true, pred, setting, _ in items:
        matrix[true][pred] += 1
        rows[row_of(true, setting)][pred] += 1
    rows = {row: counts for row, counts in rows.items() if sum(counts.values())}
    return {"labels": labels, "matrix": matrix, "rows": rows, "items": items,
            "accuracy": sum(t == p for t, p, _, _ in items) / max(len(items), 1)}


def matrix_markdown(result: dict) -> str:
    """The confusion matrix as a markdown table (rows: the truth, split by kind; columns: the diagnosis)."""
    labels = result["labels"]
    truth = dict(ROWS)
    lines = ["| true \\ diagnosed | " + " | ".join(labels) + " | correct |",
             "|---|" + "---|" * (len(labels) + 1)]
    for row, counts in result["rows"].items():
        n = sum(counts.values())
        lines.append(f"| {row} | " + " | ".join(str(counts[p]) for p in labels) +
                     f" | {counts[truth[row]]}/{n} |")
    n = len(result["items"])
    lines.append(f"\nAccuracy: {round(result['accuracy'] * n)}/{n} = {100 * result['accuracy']:.1f}%")
    return "\n".join(lines)


def wrong_diagnoses(result: dict) -> list[str]:
    """One line per wrong diagnosis: "- photo, setting: diagnosed label"."""
    return [f"- {name}, {setting}: diagnosed {pred}" for true, pred, setting, name in result["items"] if true != pred]


def matrix_photos(images: str = "test", root=None) -> tuple[dict, str]:
    """({name: path}, where they come from) for the matrix: "test" or "val" (data/<split>; "test" falls back
    to scikit-image's photos of the test split where data/test is missing), "skimage", or any folder of clean
    photos."""
    from drcnet.data.datasets import data_root, list_images
    if images == "skimage" or (images == "test" and not (data_root(root) / "test").is_dir()):
        return skimage_test_photos(), "scikit-image's photos of the test split"
    if images in ("test", "val"):
        return {q.name: q for q in list_images(data_root(root) / images)}, f"data/{images}"
    return {q.name: q for q in list_images(images)}, str(images)


def skimage_test_photos() -> dict[str, str]:
    """The test split's scikit-image photos (drcnet.data.splits.SKIMAGE_TEST), read from the installed package's
    data folder: available wherever scikit-image is, so tests need no data/ folder."""
    from pathlib import Path

    import skimage.data

    from drcnet.data.splits import SKIMAGE_TEST
    folder = Path(skimage.data.__file__).parent
    return {name: str(folder / name) for name in SKIMAGE_TEST if (folder / name).is_file()}
