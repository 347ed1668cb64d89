"""The demo's logic as plain, tested functions; app.py only builds the Gradio UI and wires it to these.

This module holds what every tab shares (checkpoints, inputs, Restore, examples); each other tab has its own
module (inspect_tab, intra_cr_tab, compare_tab; figures for the matplotlib helpers), re-exported here.

Every handler takes file paths and plain values and returns numpy arrays / PIL images / dicts, so it runs
without Gradio (tests, scripts/measure_app.py). Errors a user can act on are raised as DemoError (or the
project's ImageError / CheckpointError, both ValueErrors); app.py turns them into gr.Error messages.

Models: one Restorer per checkpoint file, loaded on first use and kept (keyed by path and mtime, so a freshly
trained checkpoint replaces the old one without a restart), one lock per task so a model runs one request at a
time (the inspector changes the model's threshold t while it runs). A task without its checkpoint is an error
that names the file: the app never restores with a randomly initialised network.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")                      # no display; figures are rendered to PIL images and closed
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from drcnet.model.checkpoint import CheckpointError, read_metadata  # noqa: E402
from drcnet.serve.compiled import COMPILE_MAX_SIDE, compile_setting  # noqa: E402
from drcnet.serve.engine import Restorer  # noqa: E402
from drcnet.serve.imageio import ImageError, LoadedImage, load_image, save_image  # noqa: E402
from drcnet.core.metrics import psnr, ssim  # noqa: E402

# drcnet.data.degrade (scipy.signal) and matplotlib.pyplot are imported on first use, which keeps the app's
# start-up (first page served) short; the task list comes from drcnet.core.tasks, which imports neither.
from drcnet.core.tasks import TASKS  # noqa: E402
from drcnet.core.paths import ASSETS, checkpoint_file, checkpoints_dir, REPO  # noqa: E402
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

def checkpoint_path(task: str) -> Path:
    check_task(task)
    return checkpoint_file(checkpoints_dir(), task)


def check_task(task: str | None) -> str:
    if task in (None, ""):                  # the task selection is empty after a photo that looks clean
        from drcnet.demo.upload import NO_TASK
        raise DemoError(NO_TASK)
    if task not in TASKS:
        raise DemoError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return task


def ablation_paths(task: str) -> list[Path]:
    """checkpoints/<task>-*.safetensors: ablation models (e.g. denoise-l1.safetensors) for Compare."""
    check_task(task)
    return sorted(checkpoints_dir().glob(checkpoint_file(".", f"{task}-*").name))


def checkpoint_status() -> dict[str, dict]:
    """Per task: {"file", "present", "preset", "note"} read from the file header only (cheap). File names only:
    the page and the API answers never show the server's folders (a public Space must not)."""
    out = {}
    for task in TASKS:
        path = checkpoint_path(task)
        info = {"file": path.name, "present": path.is_file(), "preset": "", "note": ""}
        if info["present"]:
            try:
                meta = read_metadata(path)
                info["preset"] = meta.get("preset", "")
                training = meta.get("training") or {}
                if training.get("iterations"):
                    info["note"] = f"{training['iterations']} iterations"
            except CheckpointError as e:
                info["present"], info["note"] = False, hide_paths(str(e))
        out[task] = info
    return out


def test_gain(task: str) -> str:
    """The measured test-set gain of a task's checkpoint over its input, from `<task>.test.json` beside it
    (written by scripts/ship_checkpoint.py, so a shipped checkpoint updates the page): mean PSNR of `drcnet`
    minus `input` per evaluation setting, and whether it meets its recipe's targets. "" when there is no file."""
    import json
    path = checkpoint_file(checkpoints_dir(), task, "test")
    try:
        results = json.loads(path.read_text())
        gains = [(setting, row["drcnet"]["psnr"] - row["input"]["psnr"]) for setting, row in results["mean"].items()]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if not gains:
        return ""
    text = ", ".join(f"{g:+.1f} dB ({setting_label(task, s)})" for s, g in gains) + " on the test set"
    try:
        from drcnet.train.recipe import load_recipe
        gap = load_recipe(task).worst_gap(results)
    except (OSError, ValueError, KeyError):
        return text
    return text + (" — meets its targets" if gap >= 0 else f" — an early checkpoint ({-gap:.1f} dB short of its "
                                                             "targets)")


def setting_label(task: str, setting: str) -> str:
    """An evaluation setting as a visitor reads it: sigma25 -> sigma 25, kernel13_seed101 -> 13 px, heavy -> heavy."""
    if task == "denoise" and setting.startswith("sigma"):
        return "sigma " + setting[5:]
    if task == "deblur" and setting.startswith("kernel"):
        return setting[6:].split("_")[0] + " px"
    return setting


def status_markdown() -> str:
    lines = []
    for task, info in checkpoint_status().items():
        if info["present"]:
            extra = ", ".join(x for x in (info["preset"] and f"preset {info['preset']}", info["note"]) if x)
            gain = test_gain(task)
            lines.append(f"- **{task}**: ready ({info['file']}{', ' + extra if extra else ''})"
                         f"{'; ' + gain if gain else ''}")
        else:
            lines.append(f"- **{task}**: no checkpoint ({info['note'] or 'missing ' + info['file']}); "
                         f"this task is unavailable until it is trained")
    return ("Checkpoints: (gain = the restored photos' mean PSNR minus the degraded inputs', on the test "
            "photos)\n" + "\n".join(lines))


def user_message(error: BaseException) -> str | None:
    """The text a user reads for an error they can act on (a bad file, a missing checkpoint, too big an image);
    None for anything else (a bug: app.py logs it). The one place these messages are made."""
    if isinstance(error, (DemoError, ImageError, CheckpointError)):
        return hide_paths(str(error))
    if isinstance(error, MemoryError):
        return "Out of memory for this image: try a smaller one."
    return None


def hide_paths(text: str) -> str:
    """Replace the checkpoint folder and the repository's own path in a message by nothing (file names stay)."""
    for folder in sorted({str(checkpoints_dir().resolve()), str(checkpoints_dir()), str(REPO)}, key=len, reverse=True):
        text = text.replace(folder + os.sep, "").replace(folder, "the checkpoint folder")
    return text


_models: dict[tuple[str, float], Restorer] = {}
_models_lock = threading.Lock()
_task_locks = {task: threading.Lock() for task in TASKS}


def task_lock(task: str) -> threading.Lock:
    return _task_locks[check_task(task)]


def get_restorer(path: Path | str, device: str | None = None) -> Restorer:
    """The cached Restorer of a checkpoint file (CUDA when present, else the engine's CPU path)."""
    path = Path(path)
    if not path.is_file():
        raise DemoError(f"no checkpoint {path.name}")
    key = (str(path.resolve()), path.stat().st_mtime)
    with _models_lock:
        restorer = _models.get(key)
        if restorer is None:
            for old in [k for k in _models if k[0] == key[0]]:     # a retrained file replaces the old model
                del _models[old]
            restorer = Restorer.from_checkpoint(path, device=device or os.environ.get("DRCNET_DEVICE"),
                                                precision=os.environ.get("DRCNET_PRECISION"),
                                                compile=compile_setting(os.environ.get("DRCNET_COMPILE", "auto")))
            _models[key] = restorer
        return restorer


def warm_up_compiled(tasks=TASKS) -> threading.Thread:
    """Start-up hook: load the available models and queue their whole-image (and tile) graphs on the engine's
    compile thread, all in the background; requests are served by the eager model until a graph is ready."""
    def load_and_queue():
        for task in tasks:
            if checkpoint_path(task).is_file():
                model_for(task).warm_up(sorted({(COMPILE_MAX_SIDE,) * 2, (TILE,) * 2}))

    thread = threading.Thread(target=load_and_queue, name="drcnet-warm-up", daemon=True)
    thread.start()
    return thread


def model_for(task: str) -> Restorer:
    path = checkpoint_path(task)
    if not path.is_file():
        raise DemoError(f"The {task} model is not available: its checkpoint {path.name} is missing from the "
                        f"checkpoint folder (it may still be training). Pick another task or add the file.")
    return get_restorer(path)


def clear_cache() -> None:
    """Forget the loaded models and the prepared inputs (tests, or after replacing files by hand)."""
    with _models_lock:
        _models.clear()
    _prep_cache.clear()


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
        from drcnet.data.degrade import RAIN_PRESETS
        if rain not in RAIN_PRESETS:
            raise DemoError(f"rain must be one of {sorted(RAIN_PRESETS)}, got {rain!r}")
        return {"setting": rain}
    from drcnet.data.degrade import KERNEL_SIZES
    size = int(blur_size) | 1
    size = min(max(size, KERNEL_SIZES[0]), KERNEL_SIZES[1])
    return {"size": size}


_prep_cache: dict[tuple, Prepared] = {}


def prepare(image, task: str, reference=None, synthesize: bool = False, sigma: float = 25, rain: str = "light",
            blur_size: int = 21, seed: int = 0, max_side: int | None = None) -> Prepared:
    """Load the input (and reference), optionally degrade a clean photo with the project's synthetic
    degradations (fixed seed: the same settings give the same picture), optionally shrink to max_side.

    synthesize=True: `image` is the clean photo; the degraded input is made from it, the clean one is the
    reference. Otherwise `image` is already degraded and `reference` (optional) its clean version.
    task None or "" (no task selected, as after a photo that looks clean): a DemoError that asks which task to
    run, repeating the clean-photo warning; nothing is loaded or run."""
    if task in (None, ""):
        from drcnet.demo.upload import no_task_message
        raise DemoError(no_task_message(image, synthesize))
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
        from drcnet.data.degrade import degrade
        rng = np.random.default_rng(int(seed))
        degraded, info = degrade(clean, task, rng, **synthetic_settings(task, sigma, rain, blur_size))
        degraded = np.clip(degraded, 0, 1).astype(np.float32)
    else:
        degraded = rgb
        if rgb.shape == loaded.rgb.shape:         # a premade example at its own size: its settings are known
            info = known_degradation(image, task) or {}
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
        restorer.reset_threshold()
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
             f"{stats['seconds']:.2f} s | {stats['tiles']} tile{'s' if stats['tiles'] != 1 else ''} | "
             f"{restorer.describe_statistics()}")
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


def output_folder() -> Path:
    """A private temporary folder for downloads (results, figures) that keeps only the newest KEEP_RESULTS
    files, so a long-running server does not fill its disk."""
    import tempfile
    if not _results_dir:
        _results_dir.append(Path(tempfile.mkdtemp(prefix="drcnet-results-")))
    folder = _results_dir[0]
    old = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime)
    for p in old[:max(0, len(old) - KEEP_RESULTS + 2)]:
        p.unlink(missing_ok=True)
    return folder


FAST_PNG = 1    # zlib level for the app's own PNGs: 40 ms at 512x512 against 143 ms at Pillow's default (6)


def display_png(image: Image.Image, name: str) -> str:
    """Write an image the page displays as a PNG at zlib level 1 and return its path: Gradio serves a path as
    it is, where a PIL image would be encoded again at the default level (three such encodes were 0.42 s of a
    1.4 s /restore). PNG is lossless: the pixels are the same, the file about a sixth larger."""
    path = output_folder() / f"{name}_{time.time_ns() % 10**9}.png"
    image.save(path, compress_level=FAST_PNG)
    return str(path)


def result_file(prepared: Prepared, restored: np.ndarray) -> Path:
    """Write the full-fidelity result (16-bit PNG for 16-bit inputs, alpha and grey as the input had them)."""
    folder = output_folder()
    stem = Path(prepared.loaded.source_name).stem[:40] or "image"
    path = folder / f"{stem}_restored_{time.time_ns() % 10**9}.png"
    if prepared.synthetic:
        to_pil(restored).save(path, compress_level=FAST_PNG)
    else:
        save_image(path, prepared.loaded, restored)
    return path


def describe_info(info: dict) -> str:
    if info.get("task") == "denoise":
        return f"noise sigma {info['sigma']:g}"
    if info.get("task") == "derain":
        return f"{info['setting']} rain"
    if info.get("task") == "deblur":
        seed = f" (seed {info['seed']})" if "seed" in info else ""
        return f"motion blur, kernel {info['kernel'].shape[0]} px{seed}"
    return ""


# ---------------------------------------------------------------- examples

def _example_entries(task: str | None = None) -> list[dict]:
    import json
    index = ASSETS / "examples.json"
    if not index.is_file():
        return []
    return [e for e in json.loads(index.read_text()) if not task or e["task"] == task]


def examples(task: str | None = None) -> list[list]:
    """Rows [input, task, reference, synthesize, sigma, rain, blur_size, seed] that fill the controls, read from
    assets/examples.json (written by scripts/make_assets.py); paths made absolute."""
    rows = []
    for e in _example_entries(task):
        ref = str(ASSETS / e["reference"]) if e.get("reference") else None
        made = e.get("settings") or {}          # how a committed degraded file was made
        rows.append([str(ASSETS / e["input"]), e["task"], ref, bool(e.get("synthesize", False)),
                     e.get("sigma", made.get("sigma", 25)), e.get("rain", made.get("setting", "light")),
                     e.get("blur_size", made.get("size", 21)), e.get("seed", 0)])
    return rows


def example_caption(entry: dict) -> str:
    """What a visitor reads under a thumbnail: the task and its setting ("denoise, sigma 25"); the entry's own
    caption for real photos, which have no synthetic setting. The raw parameters stay out of sight."""
    if entry.get("caption"):
        return entry["caption"]
    made = entry.get("settings") or {}
    task = entry["task"]
    if task == "denoise":
        setting = f"sigma {entry.get('sigma', made.get('sigma', 25)):g}"
    elif task == "derain":
        setting = f"{entry.get('rain', made.get('setting', 'light'))} rain"
    else:
        setting = f"{entry.get('blur_size', made.get('size', 21))} px blur"
    # "clean + ...": a clean photo that the app degrades when clicked (the gallery's label says so). Captions
    # stay short enough for a thumbnail.
    return f"{task}, clean + {setting}" if entry.get("synthesize") else f"{task}, {setting}"


def known_degradation(path, task: str) -> dict | None:
    """degrade()'s info (true sigma, or the blur kernel regenerated from the recorded size and seed) for a
    premade degraded example, recognised by its file name and content; None for any other picture. The
    baselines then get what a synthetic degradation would give them, not an estimate."""
    if path in (None, ""):
        return None
    name = Path(str(path)).name
    for e in _example_entries(task):
        made = e.get("settings") or {}
        if e.get("synthesize") or not made or e["input"] != name or not _same_bytes(path, ASSETS / e["input"]):
            continue
        if task == "denoise":
            return {"task": task, "sigma": float(made["sigma"]), "poisson": None}
        if task == "deblur":     # scripts/make_assets.py: degrade(clean, "deblur", default_rng(seed), size=...)
            from drcnet.data.degrade import BLUR_NOISE, motion_kernel
            kernel = motion_kernel(np.random.default_rng(int(e["seed"])), int(made["size"]))
            return {"task": task, "kernel": kernel, "noise": BLUR_NOISE, "seed": int(e["seed"])}
        return {"task": task, "setting": made["setting"], "haze": False}
    return None


def _same_bytes(a, b) -> bool:
    try:
        return Path(a).stat().st_size == Path(b).stat().st_size and Path(a).read_bytes() == Path(b).read_bytes()
    except OSError:
        return False


def example_gallery(task: str | None = None) -> list[tuple[str, str]]:
    """(thumbnail path, caption) per example, in the order of examples(): index i fills the controls with row i."""
    return [(str(ASSETS / e["input"]), example_caption(e)) for e in _example_entries(task)]


# ---------------------------------------------------------------- the tabs (one module each), re-exported so that
# `from drcnet import demo as D; D.inspect(...)` keeps working. They read the settings above through the package
# (base.INSPECT_MAX_SIDE ...) at call time, so a test's monkeypatch of D.<setting> reaches them.
from drcnet.demo.figures import fig_to_image  # noqa: E402,F401
from drcnet.demo.inspect_tab import (InspectResult, block_figure, explain_mask, inspect, inspect_figure,  # noqa: E402,F401
                          overview_figure, probe_run, quantile_t, t_at_quantile, t_sweep)
from drcnet.demo.intra_cr_tab import IntraCRResult, cr_ratios, intra_cr, other_example, vgg_features  # noqa: E402,F401
from drcnet.demo.upload import (NO_TASK, UploadReport, check_input, check_reference, diagnose_file,  # noqa: E402,F401
                     no_task_message)
from drcnet.demo.compare_tab import (INPUT, CompareResult, baseline_info, compare, compare_figure,  # noqa: E402,F401
                          compare_pair, compare_steps, crop_box, short_name, table_order, zoom_crops, zoom_point,
                          zoom_source)
