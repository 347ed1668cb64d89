"""Does the DFR mask find the degradation? Per-block alignment of M_sr with a known degradation (issue 28).

The paper's claim for the DFR block is that the spatial response map M_sr, thresholded at t, selects the degraded
region. For an input whose clean photo is known we can check that claim block by block:

    degraded, truth = degrade_with_truth(clean, "derain", rng)
    scores = block_alignment(restorer, degraded, truth)       # {(stage, level): BlockAlignment}
    scores[(2, 1)].auc                                         # 0.5 = chance, 1 = M_sr ranks the truth perfectly

What is measured, per DFR block (stage 1-2, level 0-3):

- auc: the ROC-AUC of M_sr, resized to the image (bilinear), as a score for the label "truth >= its (1 - top)
  quantile" (the `top` = 10 % most degraded pixels). 0.5 is chance; below 0.5 the LOW responses mark the
  degradation, so M_sr >= t would select the wrong side.
- spearman: the rank correlation of the resized M_sr with the continuous truth map.
- precision, recall: of the block's actual mask M = [M_sr >= t] (nearest-resized) against the label. precision
  is NaN (undefined) when the mask is empty, which it is in most blocks of the shipped models at t = 0.75.
- coverage: the fraction of the block's map that M selects; t: the block's threshold.
- t_top: the t that would make the mask cover the top 10 %: the (1 - top) quantile of the block's own M_sr.

The truth map per task (all H x W, larger = more degraded):

- derain: the rain layer the generator added, R in [0, 1], where rainy = 1 - (1 - clean)(1 - R) (a screen
  blend). `rain_with_layer` obtains R by replaying drcnet.degrade.add_rain's own draws with its exposed
  internals (RAIN_PRESETS, rain_layer), not by differencing images, so it is the layer itself, also where the
  clean photo is bright and the streak barely shows; its rainy image equals add_rain's bit for bit (tested).
  Heavy rain, no haze (the haze veils every pixel alike).
- deblur: |blurred - clean| in luminance (0.299 R + 0.587 G + 0.114 B), smoothed by a 5 x 5 box filter:
  where the blur changed the picture, i.e. near edges and texture. 21 px motion kernel, the generator's 0.01
  noise and 8-bit rounding included (drcnet.degrade.motion_blur).
- denoise: additive Gaussian noise whose sigma varies smoothly over the image (`spatially_varying_noise`); the
  sigma map (0-255 units) is the truth. Plain AWGN is everywhere alike and has no spatial truth.

block_alignment runs one whole-image pass (a Restorer `using(statistics="whole")`, tile=0, or a bare model), so
every block's map covers the whole image. `oracle_masks` replaces the mask of chosen blocks by the true one
(issue 28 item 5: does DFR gain when the mask is right?).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage, stats

from drcnet.data.degrade import RAIN_PRESETS, motion_blur, rain_layer
from drcnet.model.probes import FeatureProbe

LUMA = np.array([0.299, 0.587, 0.114])
TOP = 0.10                        # the label: the 10 % most degraded pixels
BLUR_SIZE = 21                    # the table's settings: heavy rain, 21 px motion blur, noise sigma 5-50
NOISE_RANGE = (5.0, 50.0)         # (0-255 units) within the training range U[0, 55]
TRUTH_SMOOTHING = 5               # box filter of the blur truth
TASKS = ("derain", "deblur", "denoise")   # the table's row order (drcnet.core.tasks has the task list)
MARGIN = 0.10                     # an AUC this far from 0.5 or more: the block points toward / away (direction)


# ------------------------------------------------------------------------------------------- statistics

def roc_auc(score, label) -> float:
    """ROC-AUC of `score` for the boolean `label`: the probability that a random positive pixel scores higher
    than a random negative one, ties counted one half (Mann-Whitney U from average ranks). NaN if either class
    is empty."""
    score, label = np.asarray(score, np.float64).ravel(), np.asarray(label, bool).ravel()
    n1 = int(label.sum())
    n0 = label.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(score)                       # ties get the average of their ranks
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def spearman(a, b) -> float:
    """Spearman's rank correlation: the Pearson correlation of the average ranks. NaN if either is constant."""
    ra, rb = stats.rankdata(np.asarray(a, np.float64).ravel()), stats.rankdata(np.asarray(b, np.float64).ravel())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def top_label(truth, top: float = TOP) -> np.ndarray:
    """The boolean label: truth >= its (1 - top) quantile (the `top` fraction of most degraded pixels)."""
    truth = np.asarray(truth)
    return truth >= np.quantile(truth, 1.0 - top)


def luminance(image) -> np.ndarray:
    return np.asarray(image, np.float64)[..., :3] @ LUMA


# ------------------------------------------------------------------------------------------ truth maps

def rain_with_layer(clean: np.ndarray, rng: np.random.Generator, setting: str = "heavy"):
    """(rainy, layer): drcnet.degrade.add_rain(clean, rng, setting) (no haze) and the rain layer R it blended in.

    Replays add_rain's draws in the same order with the generator's own pieces, so the same rng state gives the
    same rainy image bit for bit (tests/test_alignment.py checks this)."""
    p = RAIN_PRESETS[setting]
    angle = rng.uniform(*p["angle"])
    layer = np.zeros(clean.shape[:2], np.float32)
    for _ in range(rng.integers(p["layers"][0], p["layers"][1] + 1)):
        layer = 1.0 - (1.0 - layer) * (1.0 - rain_layer(clean.shape[:2], rng, angle, p))
    rainy = np.clip(1.0 - (1.0 - clean) * (1.0 - layer[..., None]), 0.0, 1.0).astype(np.float32)
    return rainy, layer


def blur_truth(blurred: np.ndarray, clean: np.ndarray, size: int = TRUTH_SMOOTHING) -> np.ndarray:
    """|blurred - clean| in luminance, smoothed by a size x size box filter."""
    return ndimage.uniform_filter(np.abs(luminance(blurred) - luminance(clean)), size).astype(np.float32)


def sigma_field(shape, rng: np.random.Generator, lo: float, hi: float, scale: float | None = None) -> np.ndarray:
    """A smooth random map spanning [lo, hi] exactly: white noise low-passed by a Gaussian of `scale` px
    (default 1/8 of the longer side: a few blobs per image), stretched to [lo, hi]."""
    h, w = shape
    scale = max(h, w) / 8 if scale is None else scale
    field = ndimage.gaussian_filter(rng.standard_normal((h, w)), scale, mode="reflect")
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-12)
    return (lo + (hi - lo) * field).astype(np.float32)


def spatially_varying_noise(clean: np.ndarray, rng: np.random.Generator, lo: float = NOISE_RANGE[0],
                            hi: float = NOISE_RANGE[1], scale: float | None = None):
    """(noisy, sigma_map): additive Gaussian noise whose standard deviation at each pixel is sigma_map (0-255
    units, smooth blobs from lo to hi, see sigma_field), the same in the three channels; not clipped, as
    drcnet.degrade.add_noise."""
    clean = np.asarray(clean, np.float32)
    sigma_map = sigma_field(clean.shape[:2], rng, lo, hi, scale)
    noise = rng.standard_normal(clean.shape).astype(np.float32) * (sigma_map[..., None] / 255.0)
    return clean + noise, sigma_map


def degrade_with_truth(clean: np.ndarray, task: str, rng: np.random.Generator):
    """(degraded, truth) with the table's settings: heavy rain, a 21 px motion blur, noise of sigma 5-50."""
    clean = np.asarray(clean, np.float32)
    if task == "derain":
        return rain_with_layer(clean, rng, "heavy")
    if task == "deblur":
        blurred, _ = motion_blur(clean, rng, BLUR_SIZE)
        return blurred, blur_truth(blurred, clean)
    if task == "denoise":
        return spatially_varying_noise(clean, rng)
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


# ------------------------------------------------------------------------------------- block alignment

@dataclass
class BlockAlignment:
    auc: float              # ROC-AUC of the resized M_sr for the top-10 % label
    spearman: float         # rank correlation of the resized M_sr with the truth
    precision: float        # of M = [M_sr >= t] against the label (NaN: the mask is empty)
    recall: float           # of M against the label
    coverage: float         # fraction of the block's map that M selects
    t: float                # the block's threshold
    t_top: float            # the (1 - top) quantile of M_sr: the t at which M would cover the top 10 %


def _model_of(restorer_or_model):
    return getattr(restorer_or_model, "model", restorer_or_model)


def block_thresholds(model) -> dict:
    """{(stage, level): t} of every block with a spatial filter."""
    out = {}
    for stage, level, block in model.dfr_blocks():
        spatial = getattr(block, "spatial", None)
        if spatial is not None and spatial.filter is not None:
            out[(stage, level)] = float(spatial.filter.mask.t)
    return out


def run_whole(restorer_or_model, degraded: np.ndarray) -> np.ndarray:
    """One pass over the whole image (no tiles; a Restorer with whole-image statistics); the restored image."""
    if hasattr(restorer_or_model, "restore"):
        restorer = restorer_or_model
        with restorer.using(statistics="whole"):
            return restorer.restore(np.asarray(degraded, np.float32), tile=0)
    model = restorer_or_model
    x = torch.from_numpy(np.ascontiguousarray(degraded, np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        _, out2 = model(x.to(next(model.parameters()).device))
    return np.clip(out2[0].permute(1, 2, 0).float().cpu().numpy(), 0.0, 1.0)


def block_responses(restorer_or_model, degraded: np.ndarray) -> dict:
    """{(stage, level): (M_sr, M)} of every block with a spatial filter, from one whole-image pass."""
    with FeatureProbe(_model_of(restorer_or_model), pca=False) as probe:
        run_whole(restorer_or_model, degraded)
    return {key: (m.response, m.mask) for key, m in probe.maps.items() if m.response is not None}


def to_image(block_map: np.ndarray, shape, multiple: int, mode: str = "bilinear") -> np.ndarray:
    """A block's map resized to the image: the model pads the image to `multiple` (bottom, right), so the map
    covers the padded image; resize to that and crop. mode: "bilinear" (M_sr) or "nearest" (the mask).
    A map already of the image's size (maps stitched from tiles come that way) is returned as it is."""
    h, w = shape
    if np.shape(block_map) == (h, w):
        return np.asarray(block_map, np.float32)
    hp, wp = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    t = torch.from_numpy(np.asarray(block_map, np.float32))[None, None]
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(t, size=(hp, wp), mode=mode, **kw)[0, 0, :h, :w].numpy()


def response_auc(response: np.ndarray, label: np.ndarray, multiple: int) -> float:
    """The AUC of one block: its M_sr (at its level's size or the image's), bilinearly resized to the image, as a
    score for the boolean `label` (top_label of the truth). What block_alignment and the inspector both report."""
    return roc_auc(to_image(response, label.shape, multiple, "bilinear"), label)


def direction(auc: float) -> str:
    """How a block's M_sr relates to the degradation: "toward" (AUC >= 0.5 + MARGIN: high responses mark it),
    "away" (AUC <= 0.5 - MARGIN: low responses mark it, so M_sr >= t selects the wrong side), else "chance"."""
    if not math.isfinite(auc):
        return "unknown"
    auc = round(auc, 2)          # judged as reported (two decimals): a printed 0.60 never reads "chance"
    return "toward" if auc >= 0.5 + MARGIN else "away" if auc <= 0.5 - MARGIN else "chance"


def block_alignment(restorer_or_model, degraded: np.ndarray, truth: np.ndarray, top: float = TOP) -> dict:
    """{(stage, level): BlockAlignment} of M_sr against the truth map (see the module docstring)."""
    model = _model_of(restorer_or_model)
    thresholds = block_thresholds(model)
    truth = np.asarray(truth, np.float64)
    label = top_label(truth, top)
    out = {}
    for key, (response, mask) in sorted(block_responses(restorer_or_model, degraded).items()):
        score = to_image(response, truth.shape, model.cfg.multiple, "bilinear")
        selected = to_image(mask, truth.shape, model.cfg.multiple, "nearest") > 0.5
        hits = int((selected & label).sum())
        out[key] = BlockAlignment(
            auc=response_auc(response, label, model.cfg.multiple), spearman=spearman(score, truth),
            precision=hits / int(selected.sum()) if selected.any() else float("nan"), recall=hits / int(label.sum()),
            coverage=float(mask.mean()), t=thresholds[key], t_top=float(np.quantile(response, 1.0 - top)))
    return out


def mean_alignment(per_photo: list[dict]) -> dict:
    """Average {(stage, level): BlockAlignment} over photos (NaNs ignored: a precision of empty masks)."""
    out = {}
    for key in per_photo[0]:
        values = {}
        for f in fields(BlockAlignment):
            column = np.array([getattr(p[key], f.name) for p in per_photo], np.float64)
            values[f.name] = float(np.nanmean(column)) if np.isfinite(column).any() else float("nan")
        out[key] = BlockAlignment(**values)
    return out


def photo_rng(seed: int, index: int) -> np.random.Generator:
    """The random numbers of photo `index`: the same for every task and model, so rows are comparable."""
    return np.random.default_rng([seed, index])


def alignment_table(task: str, restorer, photos, seed: int = 0, top: float = TOP) -> dict:
    """{(stage, level): BlockAlignment} averaged over `photos` (clean float32 H x W x 3 arrays), each degraded
    for `task` by degrade_with_truth with photo_rng(seed, i)."""
    per_photo = []
    for i, clean in enumerate(photos):
        degraded, truth = degrade_with_truth(clean, task, photo_rng(seed, i))
        per_photo.append(block_alignment(restorer, degraded, truth, top))
    return mean_alignment(per_photo)


# ------------------------------------------------------------------------------------------ the oracle

def truth_mask(truth: np.ndarray, shape, multiple: int, top: float = TOP) -> np.ndarray:
    """The true degradation mask at a block's resolution `shape`: the truth padded as the model pads its input
    (edge values), averaged over each block cell (area resize), then its top `top` fraction. Thresholding after
    the resize keeps the mask at 10 % in every level (thin rain streaks would vanish from a resized binary mask)."""
    h, w = truth.shape
    padded = np.pad(np.asarray(truth, np.float32), ((0, -h % multiple), (0, -w % multiple)), mode="edge")
    small = F.interpolate(torch.from_numpy(padded)[None, None], size=tuple(shape), mode="area")[0, 0].numpy()
    return top_label(small, top).astype(np.float32)


@contextlib.contextmanager
def oracle_masks(restorer_or_model, truth: np.ndarray, blocks, top: float = TOP):
    """Within the context, the mask M of each block in `blocks` ((stage, level) pairs) is the true degradation
    mask (truth_mask) instead of [M_sr >= t]; everything else (M_sr, gamma, beta, the region norm) is untouched.
    Patches the forward of those blocks' ThresholdMask instances and removes the patches on exit. A Restorer's
    compiled graphs (which would not see the patch) are switched off for the duration."""
    model = _model_of(restorer_or_model)
    blocks = set(blocks)
    patched = []

    def oracle_forward(response):
        mask = truth_mask(truth, response.shape[-2:], model.cfg.multiple, top)
        mask = torch.from_numpy(mask).to(response.device, response.dtype)
        return mask[None, None].expand(response.shape[0], 1, -1, -1)

    graphs = getattr(restorer_or_model, "graphs", None)
    try:
        if graphs is not None:
            restorer_or_model.graphs = None
        for stage, level, block in model.dfr_blocks():
            if (stage, level) in blocks:
                mask_module = block.spatial.filter.mask
                mask_module.forward = oracle_forward
                patched.append(mask_module)
        missing = blocks - {key for key in block_thresholds(model)}
        if missing:
            raise ValueError(f"no spatial filter in blocks {sorted(missing)}")
        yield
    finally:
        for mask_module in patched:
            del mask_module.forward          # back to ThresholdMask.forward
        if graphs is not None:
            restorer_or_model.graphs = graphs


def oracle_psnr(task: str, restorer, photos, blocks, seed: int = 0, top: float = TOP) -> dict:
    """PSNR over `photos` (degraded as in alignment_table) of three whole-image restorations:
    "model" (the block masks as trained, M_sr >= t), "oracle" (the true mask in `blocks`) and "misplaced" (the
    same mask turned by 180 degrees: equal coverage and shape, wrong place; tells a right mask from any
    non-empty one). PSNR as drcnet.evaluate measures it (luma for derain, RGB otherwise).
    Returns {name: [psnr per photo]}."""
    from drcnet.core.metrics import psnr

    out = {"model": [], "oracle": [], "misplaced": []}
    for i, clean in enumerate(photos):
        degraded, truth = degrade_with_truth(clean, task, photo_rng(seed, i))
        for name, mask_truth in (("model", None), ("oracle", truth), ("misplaced", np.rot90(truth, 2))):
            context = contextlib.nullcontext() if mask_truth is None else \
                oracle_masks(restorer, np.ascontiguousarray(mask_truth), blocks, top)
            with context:
                restored = run_whole(restorer, degraded)
            out[name].append(psnr(restored, clean, y_channel=task == "derain"))
    return out
