"""What is wrong with a photo: noise, rain streaks, motion blur, or nothing the models fix.

    from drcnet.diagnose import diagnose
    d = diagnose(rgb)              # float32 H x W x 3 in [0, 1]
    d.task, d.finding              # "denoise", "noise, sigma about 22: denoise"

Three measures, each cheap (about 0.1 s at 512 px on one CPU core; larger photos are centre-cropped to 512 px,
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

The thresholds were set on the project's test photos with every task's evaluation settings
(`confusion_matrix`, docs/diagnose.md); they are the project's own, not from a paper.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .data import as_array, centre_crop, named_images
from .degrade import TASKS

MAX_SIDE = 512              # larger photos are centre-cropped to this before measuring
NOISE_SIGMA = 10.0          # sigma (0-255) from which a photo counts as noisy ...
LOW_LIGHT_RATIO = 0.1       # ... or sigma of at least this fraction of the mean brightness (and >= LOW_LIGHT_MIN)
LOW_LIGHT_MIN = 2.0
BLUR_DETAIL = 2.0           # detail / noise below this: blurred
RAIN_ASYMMETRY = 0.1        # white-minus-black directional peak near vertical above this ...
RAIN_RESIDUAL = 0.5         # ... and the bright residual's directional peak above this: rain
STREAK_LENGTH = 15          # px, the line filter of the directional energy
ANGLES = np.arange(-90, 90, 10)             # degrees from vertical
NEAR_VERTICAL = np.abs(ANGLES) <= 40        # rain falls within 40 degrees of vertical
CLEAN = "clean"             # the label of a photo that needs none of the tasks


@dataclass
class Diagnosis:
    task: str | None            # "denoise" | "derain" | "deblur", None when the photo looks clean
    finding: str                # one sentence for the page: "noise, sigma about 22: denoise"
    scores: dict = field(default_factory=dict)   # sigma, brightness, detail, rain_asymmetry, rain_residual

    @property
    def label(self) -> str:
        return self.task or CLEAN


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


def measure(rgb: np.ndarray) -> dict:
    """The scores diagnose() decides on (see the module docstring)."""
    rgb = centre_crop(np.asarray(rgb, np.float32), MAX_SIDE)
    g = grey(rgb)
    sigma = noise_sigma(rgb)
    white, black = top_hats(g)
    rw, rb = relative_peaks(directional_energy(white)), relative_peaks(directional_energy(black))
    residual = relative_peaks(directional_energy(np.maximum(white - black, 0)))
    return {"sigma": sigma,
            "brightness": float(g.mean()) * 255,
            "detail": float(white.mean()) * 255 / max(sigma, 0.5),
            "rain_asymmetry": float(rw[NEAR_VERTICAL].max() - rb[NEAR_VERTICAL].max()),
            "rain_residual": float(residual[NEAR_VERTICAL].max())}


def decide(s: dict) -> tuple[str | None, str]:
    """(task or None, finding) from measure()'s scores: noise first (it hides everything else), then blur
    (which leaves no thin streaks to find), then rain."""
    sigma = s["sigma"]
    if sigma >= NOISE_SIGMA or (sigma >= LOW_LIGHT_MIN and sigma >= LOW_LIGHT_RATIO * s["brightness"]):
        low = " (low light)" if sigma < NOISE_SIGMA else ""
        return "denoise", f"noise, sigma about {sigma:.0f}{low}: denoise"
    if s["detail"] < BLUR_DETAIL:
        return "deblur", f"blurred, fine detail about {s['detail']:.1f}x its noise: deblur"
    if s["rain_asymmetry"] > RAIN_ASYMMETRY and s["rain_residual"] > RAIN_RESIDUAL:
        return "derain", "thin bright streaks at one angle: derain"
    return None, (f"looks clean (noise sigma about {sigma:.0f}, fine detail {s['detail']:.1f}x its noise, no "
                  "streaks): none of the tasks is likely to improve it")


def diagnose(rgb: np.ndarray) -> Diagnosis:
    """Which task fits this photo (None: it looks clean), a sentence saying why, and the scores."""
    scores = measure(rgb)
    task, finding = decide(scores)
    assert task is None or task in TASKS
    return Diagnosis(task, finding, scores)


# ---------------------------------------------------------------- measured on degraded test photos

def confusion_matrix(images, max_side: int = 256, seed: int = 0) -> dict:
    """Diagnose every photo clean and degraded with every task's evaluation settings (drcnet.data.FixedEvalSet,
    the evaluation's centre crops; rounded to 8 bits as an uploaded file would be).

    images: anything FixedEvalSet accepts ({name: array}, a folder). Returns {"labels", "matrix"
    (true label -> predicted label -> count), "accuracy", "items": [(true, predicted, setting, image)]}."""
    from .data import FixedEvalSet
    from .degrade import quantise
    labels = [*TASKS, CLEAN]
    items = []
    for task in TASKS:
        for it in FixedEvalSet(images, task, seed=seed, max_side=max_side):
            items.append((task, diagnose(quantise(it["degraded"])).label, it["setting"], it["image"]))
    for name, src in named_images(images):
        items.append((CLEAN, diagnose(quantise(centre_crop(as_array(src), max_side))).label, "clean", name))
    matrix = {t: dict.fromkeys(labels, 0) for t in labels}
    for true, pred, _, _ in items:
        matrix[true][pred] += 1
    return {"labels": labels, "matrix": matrix, "items": items,
            "accuracy": sum(t == p for t, p, _, _ in items) / max(len(items), 1)}


def matrix_markdown(result: dict) -> str:
    """The confusion matrix as a markdown table (rows: the truth, columns: the diagnosis)."""
    labels = result["labels"]
    lines = ["| true \\ diagnosed | " + " | ".join(labels) + " | correct |",
             "|---|" + "---|" * (len(labels) + 1)]
    for t in labels:
        row = result["matrix"][t]
        n = sum(row.values())
        lines.append(f"| {t} | " + " | ".join(str(row[p]) for p in labels) + f" | {row[t]}/{n} |")
    n = len(result["items"])
    lines.append(f"\nAccuracy: {round(result['accuracy'] * n)}/{n} = {100 * result['accuracy']:.1f}%")
    return "\n".join(lines)


def skimage_test_photos() -> dict[str, str]:
    """The test split's scikit-image photos (drcnet.splits.SKIMAGE_TEST), read from the installed package's
    data folder: available wherever scikit-image is, so tests need no data/ folder."""
    from pathlib import Path

    import skimage.data

    from .splits import SKIMAGE_TEST
    folder = Path(skimage.data.__file__).parent
    return {name: str(folder / name) for name in SKIMAGE_TEST if (folder / name).is_file()}
