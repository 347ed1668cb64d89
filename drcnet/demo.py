"""The demo's logic as plain, tested functions; app.py only builds the Gradio UI and wires it to these.

Every handler takes file paths and plain values and returns numpy arrays / PIL images / dicts, so it runs
without Gradio (tests, scripts/measure_app.py). Errors a user can act on are raised as DemoError (or the
project's ImageError / CheckpointError, both ValueErrors); app.py turns them into gr.Error messages.

Models: one Restorer per checkpoint file, loaded on first use and kept (keyed by path and mtime, so a freshly
trained checkpoint replaces the old one without a restart), one lock per task so a model runs one request at a
time (the inspector changes the model's threshold t while it runs). A task without its checkpoint is an error
that names the file: the app never restores with a randomly initialised network.
"""
from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")                      # no display; figures are rendered to PIL images and closed
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from .checkpoint import CheckpointError, read_metadata  # noqa: E402
from .engine import Restorer  # noqa: E402
from .imageio import ImageError, LoadedImage, load_image, save_image  # noqa: E402
from .losses import PAPER_LAMBDAS, INTRA_LAYERS, IntraCR, mixup_negatives  # noqa: E402
from .metrics import psnr, ssim  # noqa: E402
from .probes import FeatureProbe  # noqa: E402

# The same as drcnet.degrade.TASKS (tested); drcnet.degrade (scipy.signal) and matplotlib.pyplot are imported
# on first use, which keeps the app's start-up (first page served) short.
TASKS = ("denoise", "derain", "deblur")
REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "assets"
MAX_PIXELS = 40_000_000                    # decompression-bomb guard for uploads (40 MP)
INSPECT_MAX_SIDE = 512                     # the inspector, Intra-CR explorer and Compare work at most this size
TILE = int(os.environ.get("DRCNET_TILE", "512"))   # Restore tab: images up to this size run whole, larger are tiled
TILE_OVERLAP = 32
CR_MAX_SIDE = 192                          # VGG features for the Intra-CR curves (many forwards): smaller still
T_SWEEP = tuple(np.round(np.linspace(0.3, 1.0, 8), 3))
LEVEL_NAMES = {1: "stage 1", 2: "stage 2"}


class DemoError(ValueError):
    """A problem the user can fix; the message is shown as is."""


# ---------------------------------------------------------------- checkpoints and the model cache

def checkpoint_dir() -> Path:
    return Path(os.environ.get("DRCNET_CHECKPOINTS") or REPO / "checkpoints")


def checkpoint_path(task: str) -> Path:
    check_task(task)
    return checkpoint_dir() / f"{task}.safetensors"


def check_task(task: str) -> str:
    if task not in TASKS:
        raise DemoError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return task


def ablation_paths(task: str) -> list[Path]:
    """checkpoints/<task>-*.safetensors: ablation models (e.g. denoise-l1.safetensors) for Compare."""
    check_task(task)
    return sorted(checkpoint_dir().glob(f"{task}-*.safetensors"))


def checkpoint_status() -> dict[str, dict]:
    """Per task: {"path", "present", "preset", "note"} read from the file header only (cheap)."""
    out = {}
    for task in TASKS:
        path = checkpoint_path(task)
        info = {"path": str(path), "present": path.is_file(), "preset": "", "note": ""}
        if info["present"]:
            try:
                meta = read_metadata(path)
                info["preset"] = meta.get("preset", "")
                training = meta.get("training") or {}
                if training.get("iterations"):
                    info["note"] = f"{training['iterations']} iterations"
            except CheckpointError as e:
                info["present"], info["note"] = False, str(e)
        out[task] = info
    return out


def status_markdown() -> str:
    lines = []
    for task, info in checkpoint_status().items():
        if info["present"]:
            extra = ", ".join(x for x in (info["preset"] and f"preset {info['preset']}", info["note"]) if x)
            lines.append(f"- **{task}**: ready ({Path(info['path']).name}{', ' + extra if extra else ''})")
        else:
            lines.append(f"- **{task}**: no checkpoint ({info['note'] or 'missing ' + info['path']}); "
                         f"this task is unavailable until it is trained")
    return "Checkpoints in `" + str(checkpoint_dir()) + "`:\n" + "\n".join(lines)


_models: dict[tuple[str, float], Restorer] = {}
_models_lock = threading.Lock()
_task_locks = {task: threading.Lock() for task in TASKS}


def task_lock(task: str) -> threading.Lock:
    return _task_locks[check_task(task)]


def get_restorer(path: Path | str, device: str | None = None) -> Restorer:
    """The cached Restorer of a checkpoint file (CUDA when present, else the engine's CPU path)."""
    path = Path(path)
    if not path.is_file():
        raise DemoError(f"no checkpoint at {path}")
    key = (str(path.resolve()), path.stat().st_mtime)
    with _models_lock:
        restorer = _models.get(key)
        if restorer is None:
            for old in [k for k in _models if k[0] == key[0]]:     # a retrained file replaces the old model
                del _models[old]
            restorer = Restorer.from_checkpoint(path, device=device or os.environ.get("DRCNET_DEVICE"),
                                                precision=os.environ.get("DRCNET_PRECISION"))
            restorer.default_t = float(restorer.model.cfg.t)
            _models[key] = restorer
        return restorer


def model_for(task: str) -> Restorer:
    path = checkpoint_path(task)
    if not path.is_file():
        raise DemoError(f"The {task} model is not available: its checkpoint {path.name} is missing from "
                        f"{path.parent} (it may still be training). Pick another task or add the file.")
    return get_restorer(path)


def clear_cache() -> None:
    with _models_lock:
        _models.clear()


# ---------------------------------------------------------------- inputs

@dataclass
class Prepared:
    """What every tab works on: the degraded input, the clean reference when known, and how it was made."""
    degraded: np.ndarray                     # float32 HxWx3 in [0, 1]
    clean: np.ndarray | None
    info: dict = field(default_factory=dict)  # degrade()'s info (sigma, kernel ...) when synthetic
    loaded: LoadedImage | None = None
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)


def load(path, what: str = "image") -> LoadedImage:
    if path is None or path == "":
        raise DemoError(f"No {what} given: upload, paste or pick an example first.")
    try:
        return load_image(path, max_pixels=MAX_PIXELS)
    except ImageError:
        raise
    except Exception as e:          # anything Pillow throws that imageio did not anticipate
        raise ImageError(f"{Path(str(path)).name}: cannot read this image ({type(e).__name__}: {e})") from None


def check_usable(loaded: LoadedImage) -> None:
    h, w = loaded.size
    if min(h, w) < 8:
        raise ImageError(f"{loaded.source_name}: {w}x{h} is too small to restore (at least 8x8 pixels)")


def resize_max(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb
    s = max_side / max(h, w)
    size = (max(8, round(w * s)), max(8, round(h * s)))
    img = Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))  # float resampling via 8 bits
    return np.asarray(img.resize(size, Image.LANCZOS), np.float32) / 255.0


def synthetic_settings(task: str, sigma: float = 25, rain: str = "light", blur_size: int = 21) -> dict:
    if task == "denoise":
        if not 0 <= float(sigma) <= 100:
            raise DemoError(f"noise sigma must lie in 0..100 (0-255 units), got {sigma}")
        return {"sigma": float(sigma)}
    if task == "derain":
        from .degrade import RAIN_PRESETS
        if rain not in RAIN_PRESETS:
            raise DemoError(f"rain must be one of {sorted(RAIN_PRESETS)}, got {rain!r}")
        return {"setting": rain}
    from .degrade import KERNEL_SIZES
    size = int(blur_size) | 1
    size = min(max(size, KERNEL_SIZES[0]), KERNEL_SIZES[1])
    return {"size": size}


_prep_cache: dict[tuple, Prepared] = {}


def prepare(image, task: str, reference=None, synthesize: bool = False, sigma: float = 25, rain: str = "light",
            blur_size: int = 21, seed: int = 0, max_side: int | None = None) -> Prepared:
    """Load the input (and reference), optionally degrade a clean photo with the project's synthetic
    degradations (fixed seed: the same settings give the same picture), optionally shrink to max_side.

    synthesize=True: `image` is the clean photo; the degraded input is made from it, the clean one is the
    reference. Otherwise `image` is already degraded and `reference` (optional) its clean version."""
    check_task(task)
    key = (str(image), _mtime(image), str(reference), _mtime(reference), task, bool(synthesize), float(sigma),
           rain, int(blur_size), int(seed), max_side)
    if key in _prep_cache:
        return _prep_cache[key]
    loaded = load(image, "input image")
    check_usable(loaded)
    notes = []
    if loaded.alpha is not None:
        notes.append("alpha channel kept aside (restored on RGB, re-attached on download)")
    if loaded.bit_depth == 16:
        notes.append("16-bit input")
    rgb = resize_max(loaded.rgb, max_side)
    if rgb.shape != loaded.rgb.shape:
        notes.append(f"downscaled to {rgb.shape[1]}x{rgb.shape[0]} for interactive speed")
    clean, info = None, {}
    if synthesize:
        clean = rgb
        from .degrade import degrade
        rng = np.random.default_rng(int(seed))
        degraded, info = degrade(clean, task, rng, **synthetic_settings(task, sigma, rain, blur_size))
        degraded = np.clip(degraded, 0, 1).astype(np.float32)
    else:
        degraded = rgb
        if reference not in (None, ""):
            ref = load(reference, "reference image")
            ref_rgb = resize_max(ref.rgb, max_side)
            if ref_rgb.shape != degraded.shape:
                raise DemoError(f"the reference {ref.source_name} is {ref.rgb.shape[1]}x{ref.rgb.shape[0]} but "
                                f"the input is {loaded.rgb.shape[1]}x{loaded.rgb.shape[0]}: they must match")
            clean = ref_rgb
    prepared = Prepared(degraded, clean, info, loaded, bool(synthesize), notes)
    if len(_prep_cache) > 8:
        _prep_cache.clear()
    _prep_cache[key] = prepared
    return prepared


def _mtime(path) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except (OSError, TypeError, ValueError):
        return 0.0


def to_pil(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def quality(restored: np.ndarray, clean: np.ndarray | None, task: str) -> dict | None:
    """PSNR / SSIM against the clean reference (BT.601 Y for deraining, the paper's convention)."""
    if clean is None:
        return None
    y = task == "derain"
    return {"psnr": psnr(restored, clean, y_channel=y), "ssim": ssim(restored, clean, y_channel=y)}


# ---------------------------------------------------------------- Restore

@dataclass
class RestoreResult:
    before: Image.Image
    after: Image.Image
    stage1: Image.Image | None
    facts: str
    metrics: dict | None             # {"input": {psnr, ssim}, "drcnet": {psnr, ssim}} when a reference is known
    download: Path                   # PNG of the result as the input was: alpha re-attached, grey, 16 bits
    stats: dict


def restore(image, task: str, reference=None, synthesize: bool = False, sigma: float = 25, rain: str = "light",
            blur_size: int = 21, seed: int = 0, stage1: bool = False,
            progress: Callable[[int, int], None] | None = None) -> RestoreResult:
    """Restore one image at full resolution (tiled above the engine's tile size, with progress per tile)."""
    prepared = prepare(image, task, reference, synthesize, sigma, rain, blur_size, seed)
    restorer = model_for(task)
    with task_lock(task):
        restorer.set_threshold(restorer.default_t)
        out = restorer.restore(prepared.degraded, tile=TILE, overlap=TILE_OVERLAP, progress=progress,
                               return_stage1=stage1)
        stats = dict(restorer.last_stats)
    out2, out1 = out if stage1 else (out, None)
    metrics = None
    if prepared.clean is not None:
        metrics = {"input": quality(prepared.degraded, prepared.clean, task),
                   "drcnet": quality(out2, prepared.clean, task)}
    h, w = stats["size"]
    facts = (f"{task} | {w}x{h} | device {stats['device']} | precision {stats['precision']} | "
             f"{stats['seconds']:.2f} s | {stats['tiles']} tile{'s' if stats['tiles'] != 1 else ''}")
    if metrics:
        m, i = metrics["drcnet"], metrics["input"]
        facts += (f" | PSNR {i['psnr']:.2f} -> {m['psnr']:.2f} dB, SSIM {i['ssim']:.3f} -> {m['ssim']:.3f}"
                  f"{' (Y channel)' if task == 'derain' else ''}")
    if prepared.synthetic:
        facts += " | synthetic " + describe_info(prepared.info)
    if prepared.notes:
        facts += " | " + "; ".join(prepared.notes)
    download = result_file(prepared, out2)
    return RestoreResult(to_pil(prepared.degraded), to_pil(out2), None if out1 is None else to_pil(out1), facts,
                         metrics, download, stats)


_results_dir: list[Path] = []
KEEP_RESULTS = 32


def result_file(prepared: Prepared, restored: np.ndarray) -> Path:
    """Write the full-fidelity result (16-bit PNG for 16-bit inputs, alpha and grey as the input had them) to
    a private temporary folder that keeps only the newest KEEP_RESULTS files."""
    import tempfile
    if not _results_dir:
        _results_dir.append(Path(tempfile.mkdtemp(prefix="drcnet-results-")))
    folder = _results_dir[0]
    old = sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime)
    for p in old[:max(0, len(old) - KEEP_RESULTS + 1)]:
        p.unlink(missing_ok=True)
    stem = Path(prepared.loaded.source_name).stem[:40] or "image"
    path = folder / f"{stem}_restored_{time.time_ns() % 10**9}.png"
    if prepared.synthetic:
        to_pil(restored).save(path)
    else:
        save_image(path, prepared.loaded, restored)
    return path


def describe_info(info: dict) -> str:
    if info.get("task") == "denoise":
        return f"noise sigma {info['sigma']:g}"
    if info.get("task") == "derain":
        return f"{info['setting']} rain"
    if info.get("task") == "deblur":
        return f"motion blur, kernel {info['kernel'].shape[0]} px"
    return ""


# ---------------------------------------------------------------- figures

def _plt():
    import matplotlib.pyplot as plt
    return plt


def fig_to_image(fig) -> Image.Image:
    """Render a matplotlib figure to a PIL image and close it (figures must not pile up in a server)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=fig.dpi)
    finally:
        _plt().close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _heat(ax, fig, data, title, cmap="viridis", vmin=None, vmax=None):
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)


def _upsample(mask: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour resize of a level's map to the image size (levels are 1/2^i of the input)."""
    h, w = shape[:2]
    ys = np.minimum((np.arange(h) * mask.shape[0] / h).astype(int), mask.shape[0] - 1)
    xs = np.minimum((np.arange(w) * mask.shape[1] / w).astype(int), mask.shape[1] - 1)
    return mask[ys][:, xs]


def block_figure(maps, image: np.ndarray, stage: int, level: int, t: float) -> Image.Image:
    """The six maps of one DFR block, each a heatmap with a colour bar."""
    fig, axes = _plt().subplots(2, 3, figsize=(12, 7.2), dpi=80)
    fig.suptitle(f"DFR block, {LEVEL_NAMES[stage]} level {level} ({maps.width}x{maps.height}, "
                 f"{maps.channels} channels), t = {t:.2f}", fontsize=11)
    ax = axes.ravel()
    if maps.response is not None:
        r = maps.response
        _heat(ax[0], fig, r, f"spatial response map M_sr (range {r.min():.2f}-{r.max():.2f})", "magma", 0, 1)
        overlay = image.copy()
        m = _upsample(maps.mask, image.shape) > 0.5
        overlay[m] = 0.45 * overlay[m] + 0.55 * np.array([1.0, 0.15, 0.1])
        ax[1].imshow(np.clip(overlay, 0, 1))
        ax[1].set_title(f"mask M_sr >= t (red), coverage {100 * maps.coverage:.1f}%", fontsize=9)
        ax[1].set_xticks([]), ax[1].set_yticks([])
        _heat(ax[2], fig, maps.spatial.mean, "spatial-filter output (channel mean)", "coolwarm")
    else:
        for a in ax[:3]:
            a.axis("off")
            a.text(0.5, 0.5, "no spatial filter at this level", ha="center", va="center", fontsize=9)
    for a, summary, title in ((ax[3], maps.energy, "energy-attention weights (mean)"),
                              (ax[4], maps.identity, "identity branch (mean)"),
                              (ax[5], maps.fused, "fused block output (mean)")):
        if summary is None:
            a.axis("off")
            a.text(0.5, 0.5, "branch absent in this variant", ha="center", va="center", fontsize=9)
        else:
            _heat(a, fig, summary.mean, title, "viridis" if "energy" in title else "coolwarm")
    fig.tight_layout()
    return fig_to_image(fig)


def overview_figure(probe_maps, image: np.ndarray, t: float) -> Image.Image:
    """All 8 blocks: the response map with the mask's outline, coverage in the title."""
    keys = sorted(probe_maps)
    levels = max(k[1] for k in keys) + 1
    fig, axes = _plt().subplots(2, levels, figsize=(3.1 * levels, 6.2), dpi=72, squeeze=False)
    fig.suptitle(f"Spatial response maps of all DFR blocks (mask M_sr >= {t:.2f} outlined)", fontsize=11)
    for (stage, level) in keys:
        a = axes[stage - 1][level]
        m = probe_maps[(stage, level)]
        a.set_xticks([]), a.set_yticks([])
        if m.response is None:
            a.text(0.5, 0.5, "no spatial filter", ha="center", va="center", fontsize=9)
            a.set_title(f"S{stage} L{level}", fontsize=9)
            continue
        im = a.imshow(m.response, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        if 0 < m.mask.mean() < 1:
            a.contour(m.mask, levels=[0.5], colors="cyan", linewidths=0.8)
        a.set_title(f"S{stage} L{level} {m.width}x{m.height}: {100 * m.coverage:.0f}%", fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
    return fig_to_image(fig)


# ---------------------------------------------------------------- Inspect DFR

@dataclass
class InspectResult:
    before: Image.Image
    after: Image.Image
    block: Image.Image
    overview: Image.Image
    facts: str
    coverage: dict                 # (stage, level) -> coverage
    metrics: dict | None


def probe_run(restorer: Restorer, degraded: np.ndarray, t: float, channel: int = 0):
    """One forward at threshold t with the feature probe attached; the caller holds the task lock."""
    restorer.set_threshold(float(t))
    try:
        with FeatureProbe(restorer.model, channel=channel, pca=False) as probe:
            out = restorer.restore(degraded, tile=0)
        return out, probe.maps
    finally:
        restorer.set_threshold(restorer.default_t)


def inspect(image, task: str, stage: int = 1, level: int = 0, t: float = 0.75, reference=None,
            synthesize: bool = False, sigma: float = 25, rain: str = "light", blur_size: int = 21,
            seed: int = 0) -> InspectResult:
    """Re-run the model at threshold t (input at most INSPECT_MAX_SIDE px) and draw the maps of one block."""
    stage, level = int(stage), int(level)
    if stage not in (1, 2):
        raise DemoError(f"stage must be 1 or 2, got {stage}")
    prepared = prepare(image, task, reference, synthesize, sigma, rain, blur_size, seed, INSPECT_MAX_SIDE)
    restorer = model_for(task)
    depth = restorer.model.cfg.depth
    if not 0 <= level < depth:
        raise DemoError(f"level must lie in 0..{depth - 1}, got {level}")
    start = time.perf_counter()
    with task_lock(task):
        out, maps = probe_run(restorer, prepared.degraded, t)
    seconds = time.perf_counter() - start
    block = block_figure(maps[(stage, level)], prepared.degraded, stage, level, t)
    overview = overview_figure(maps, prepared.degraded, t)
    metrics = quality(out, prepared.clean, task)
    h, w = prepared.degraded.shape[:2]
    facts = f"t = {t:.2f} | {w}x{h} | forward {seconds:.2f} s"
    if metrics:
        facts += f" | PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}"
    coverage = {k: m.coverage for k, m in maps.items() if m.coverage is not None}
    return InspectResult(to_pil(prepared.degraded), to_pil(out), block, overview, facts, coverage, metrics)


def t_sweep(image, task: str, stage: int = 1, level: int = 0, reference=None, synthesize: bool = False,
            sigma: float = 25, rain: str = "light", blur_size: int = 21, seed: int = 0,
            ts=T_SWEEP) -> tuple[Image.Image, list[dict]]:
    """Mask coverage (chosen block and mean over blocks) and, with a reference, PSNR against t."""
    prepared = prepare(image, task, reference, synthesize, sigma, rain, blur_size, seed, INSPECT_MAX_SIDE)
    restorer = model_for(task)
    rows = []
    with task_lock(task):
        for t in ts:
            out, maps = probe_run(restorer, prepared.degraded, float(t))
            cov = [m.coverage for m in maps.values() if m.coverage is not None]
            chosen = maps[(int(stage), int(level))].coverage
            q = quality(out, prepared.clean, task)
            rows.append({"t": float(t), "coverage": chosen, "mean_coverage": float(np.mean(cov)) if cov else None,
                         "psnr": None if q is None else q["psnr"]})
    fig, ax = _plt().subplots(figsize=(7, 3.6), dpi=80)
    tt = [r["t"] for r in rows]
    if rows[0]["coverage"] is not None:
        ax.plot(tt, [100 * r["coverage"] for r in rows], "o-", label=f"coverage S{stage} L{level}")
        ax.plot(tt, [100 * r["mean_coverage"] for r in rows], "s--", label="mean coverage, all blocks")
    ax.set_xlabel("threshold t")
    ax.set_ylabel("mask coverage (%)")
    ax.axvline(restorer.default_t, color="grey", lw=0.8, ls=":")
    if rows[0]["psnr"] is not None:
        ax2 = ax.twinx()
        ax2.plot(tt, [r["psnr"] for r in rows], "^-", color="C3", label="PSNR")
        ax2.set_ylabel("PSNR (dB)", color="C3")
        ax2.legend(loc="lower right", fontsize=8)
        ax.set_title("mask coverage and PSNR against t", fontsize=10)
    else:
        ax.set_title("mask coverage against t (no clean reference: no PSNR)", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig_to_image(fig), rows


# ---------------------------------------------------------------- Intra-CR explorer

_vgg = {}


def vgg_features():
    """The frozen VGG19 up to relu3_1 (the committed slice), loaded once."""
    if "v" not in _vgg:
        from .vgg import VGG19Features
        _vgg["v"] = VGG19Features(INTRA_LAYERS)
    return _vgg["v"]


def _t(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).permute(2, 0, 1)[None]


@torch.inference_mode()
def cr_ratios(x: torch.Tensor, clean: torch.Tensor, negatives: list[torch.Tensor], c=None,
              feats_cache: dict | None = None) -> np.ndarray:
    """Per VGG layer: d_l(X, J) / (sum_k c_k d_l(X, N_k) + eps), the quantity of drcnet.losses (tested equal to
    IntraCR.layer_ratios), with VGG features of repeated tensors computed once."""
    vgg = vgg_features()
    cache = feats_cache if feats_cache is not None else {}

    def feats(t):
        k = id(t)
        if k not in cache:
            cache[k] = (t, vgg(t))     # keep t alive so its id stays unique
        return cache[k][1]
    c = c if c is not None else [1.0] * len(negatives)
    fx, fj = feats(x), feats(clean)
    fn = [feats(n) for n in negatives]
    out = []
    for l in range(len(fx)):
        pos = (fx[l] - fj[l]).abs().mean()
        neg = sum(ck * (fx[l] - f[l]).abs().mean() for ck, f in zip(c, fn))
        out.append(float(pos / (neg + 1e-7)))
    return np.array(out)


@dataclass
class IntraCRResult:
    negatives: list[tuple[Image.Image, str]]    # gallery: the paper's three negatives and the slider's one
    plot: Image.Image
    table: list[list]                           # rows for a Dataframe
    headers: list[str]


LAMBDA_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def other_example(task: str, shape, seed: int = 1) -> np.ndarray:
    """A different image, degraded the same way: the Extra-CR negative."""
    path = ASSETS / "extra_cr_negative.png"
    if path.is_file():
        rgb = load_image(path).rgb
    else:                                        # a fallback picture that needs no file
        from skimage import data as skdata
        rgb = skdata.coffee().astype(np.float32) / 255.0
    img = Image.fromarray(np.round(rgb * 255).astype(np.uint8)).resize((shape[1], shape[0]), Image.LANCZOS)
    from .degrade import degrade
    rng = np.random.default_rng(seed)
    degraded, _ = degrade(np.asarray(img, np.float32) / 255.0, task, rng,
                          **synthetic_settings(task, 25, "light", 21))
    return np.clip(degraded, 0, 1).astype(np.float32)


def intra_cr(image, task: str, lam: float = 0.95, reference=None, synthesize: bool = True, sigma: float = 25,
             rain: str = "light", blur_size: int = 21, seed: int = 0) -> IntraCRResult:
    """Negatives N = lambda I + (1 - lambda) J and the Intra-CR ratio per VGG layer against lambda for the
    restored output, the degraded input and the clean image; Extra-CR (another image's degraded version as the
    negative) beside it. Needs a clean reference (synthetic degradation or an uploaded reference)."""
    prepared = prepare(image, task, reference, synthesize, sigma, rain, blur_size, seed, INSPECT_MAX_SIDE)
    if prepared.clean is None:
        raise DemoError("The Intra-CR explorer needs a (degraded, clean) pair: tick 'degrade a clean photo "
                        "first' or give a clean reference image.")
    restorer = model_for(task)
    with task_lock(task):
        restorer.set_threshold(restorer.default_t)
        restored = restorer.restore(prepared.degraded, tile=0)
    lam = float(lam)
    if not 0 <= lam <= 1:
        raise DemoError(f"lambda must lie in [0, 1], got {lam}")
    # what the user sees: full inspector size
    I, J = prepared.degraded, prepared.clean
    shown = [(to_pil(n), f"N, lambda = {l:g}") for l, n in
             zip((*PAPER_LAMBDAS, lam), mixup_negatives(I, J, (*PAPER_LAMBDAS, lam)))]
    shown[-1] = (shown[-1][0], f"N at the slider's lambda = {lam:g}")
    # VGG curves at CR_MAX_SIDE
    small = [resize_max(a, CR_MAX_SIDE) for a in (I, J, restored)]
    It, Jt, Xt = (_t(a) for a in small)
    other = _t(other_example(task, small[0].shape))
    cache: dict = {}
    negs = {l: n for l, n in zip(LAMBDA_GRID, mixup_negatives(It, Jt, LAMBDA_GRID))}
    subjects = {"restored X": Xt, "degraded I": It, "clean J": Jt}
    curves = {name: np.array([cr_ratios(x, Jt, [negs[l]], feats_cache=cache) for l in LAMBDA_GRID])
              for name, x in subjects.items()}
    paper_negs = mixup_negatives(It, Jt, PAPER_LAMBDAS)
    table, headers = [], ["output", "loss", *INTRA_LAYERS, "weighted sum"]
    from .losses import INTRA_WEIGHTS
    w = np.array(INTRA_WEIGHTS)
    for name, x in subjects.items():
        intra = cr_ratios(x, Jt, paper_negs, c=PAPER_LAMBDAS, feats_cache=cache)
        extra = cr_ratios(x, Jt, [other], feats_cache=cache)
        table.append([name, "Intra-CR (1, 0.95, 0.9)", *np.round(intra, 4), round(float(w @ intra), 4)])
        table.append([name, "Extra-CR (other image)", *np.round(extra, 4), round(float(w @ extra), 4)])
    fig, axes = _plt().subplots(1, len(INTRA_LAYERS) + 1, figsize=(15, 3.6), dpi=80,
                             gridspec_kw={"width_ratios": [1] * len(INTRA_LAYERS) + [1.1]})
    styles = {"restored X": "o-", "degraded I": "s--", "clean J": "^:"}
    for l, layer in enumerate(INTRA_LAYERS):
        a = axes[l]
        for name, ys in curves.items():
            a.plot(LAMBDA_GRID, np.maximum(ys[:, l], 1e-4), styles[name], label=name, ms=4)
        for pl in PAPER_LAMBDAS:
            a.axvline(pl, color="grey", lw=0.6, ls=":")
        a.axvline(lam, color="C3", lw=1.0)
        a.set_yscale("log")
        a.set_title(f"{layer}: d(X,J) / d(X,N_lambda)", fontsize=9)
        a.set_xlabel("lambda")
    axes[0].legend(fontsize=8)
    a = axes[-1]
    names = list(subjects)
    xs = np.arange(len(names))
    intra_sum = [row[-1] for row in table[0::2]]
    extra_sum = [row[-1] for row in table[1::2]]
    a.bar(xs - 0.2, np.maximum(intra_sum, 1e-4), 0.4, label="Intra-CR")
    a.bar(xs + 0.2, np.maximum(extra_sum, 1e-4), 0.4, label="Extra-CR")
    a.set_xticks(xs, names, fontsize=8)
    a.set_yscale("log")
    a.set_title("weighted CR term (lower = closer to J than to negatives)", fontsize=9)
    a.legend(fontsize=8)
    fig.tight_layout()
    return IntraCRResult(shown, fig_to_image(fig), table, headers)


# ---------------------------------------------------------------- Compare

@dataclass
class CompareResult:
    gallery: list[tuple[Image.Image, str]]
    table: list[list]
    headers: list[str]
    notes: list[str]


def baseline_info(prepared: Prepared, task: str) -> tuple[dict, list[str]]:
    """The info dict the baselines need; estimated (sigma) or absent (kernel) for real photos."""
    if prepared.synthetic:
        return prepared.info, []
    if task == "denoise":
        from skimage.restoration import estimate_sigma
        sigma = float(estimate_sigma(prepared.degraded, channel_axis=-1, average_sigmas=True)) * 255
        return {"task": task, "sigma": sigma}, [f"baselines use an estimated noise sigma of {sigma:.1f}"]
    return {"task": task}, []


def compare(image, task: str, reference=None, synthesize: bool = False, sigma: float = 25, rain: str = "light",
            blur_size: int = 21, seed: int = 0, max_side: int = INSPECT_MAX_SIDE) -> CompareResult:
    """The input through the task's DRCNet, any ablation checkpoints and the classical baselines."""
    prepared = prepare(image, task, reference, synthesize, sigma, rain, blur_size, seed, max_side)
    info, notes = baseline_info(prepared, task)
    x = prepared.degraded
    from .baselines import BASELINES       # imported on first use: skimage.restoration is slow to import
    methods: list[tuple[str, Callable[[], np.ndarray]]] = []
    main = checkpoint_path(task)
    for path in ([main] if main.is_file() else []) + ablation_paths(task):
        name = "DRCNet" if path == main else f"DRCNet {path.stem[len(task) + 1:]}"
        methods.append((name, _model_runner(path, task, x)))
    if not main.is_file():
        notes.append(f"no {main.name}: DRCNet is missing from the comparison")
    for name, fn in BASELINES[task].items():
        if "nonblind" in name and "kernel" not in info:
            notes.append(f"{name} skipped: it needs the true blur kernel (synthetic blur only)")
            continue
        methods.append((name, lambda fn=fn: fn(x, info)))
    rows = [["input (degraded)", *_scores(x, prepared.clean, task), 0.0]]
    gallery = [(to_pil(x), "input")]
    if prepared.clean is not None:
        gallery.append((to_pil(prepared.clean), "clean reference"))
    for name, run in methods:
        start = time.perf_counter()
        try:
            out = run()
        except Exception as e:   # one failing method must not sink the comparison
            notes.append(f"{name} failed: {type(e).__name__}: {e}")
            continue
        seconds = time.perf_counter() - start
        scores = _scores(out, prepared.clean, task)
        rows.append([name, *scores, round(seconds, 3)])
        label = name + (f" ({scores[0]:.2f} dB)" if scores[0] is not None else "") + f", {seconds:.2f} s"
        gallery.append((to_pil(out), label))
    headers = ["method", "PSNR (dB)", "SSIM", "seconds"]
    if prepared.clean is None:
        notes.append("no clean reference: metrics need a synthetic degradation or an uploaded reference")
    return CompareResult(gallery, rows, headers, notes)


def _model_runner(path: Path, task: str, x: np.ndarray):
    def run():
        restorer = get_restorer(path)
        with task_lock(task):
            restorer.set_threshold(restorer.default_t)
            return restorer.restore(x, tile=TILE, overlap=TILE_OVERLAP)
    return run


def _scores(out, clean, task):
    q = quality(out, clean, task)
    return [None, None] if q is None else [round(q["psnr"], 2), round(q["ssim"], 4)]


# ---------------------------------------------------------------- examples

def examples(task: str | None = None) -> list[list]:
    """Rows for gr.Examples: [input, task, reference, synthesize, sigma, rain, blur_size, seed], read from
    assets/examples.json (written by scripts/make_assets.py); paths made absolute."""
    import json
    index = ASSETS / "examples.json"
    if not index.is_file():
        return []
    rows = []
    for e in json.loads(index.read_text()):
        if task and e["task"] != task:
            continue
        ref = str(ASSETS / e["reference"]) if e.get("reference") else None
        made = e.get("settings") or {}          # how a committed degraded file was made, shown in the UI
        rows.append([str(ASSETS / e["input"]), e["task"], ref, bool(e.get("synthesize", False)),
                     e.get("sigma", made.get("sigma", 25)), e.get("rain", made.get("setting", "light")),
                     e.get("blur_size", made.get("size", 21)), e.get("seed", 0)])
    return rows
