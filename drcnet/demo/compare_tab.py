"""Compare tab: DRCNet (and its stage 1), its ablation checkpoints and the classical baselines on one input;
any two results in one before/after slider, the same crop of every result side by side, a figure for slides.

compare_steps is a generator: it yields once all fast methods are done and again after each slow one (BM3D takes a
few seconds on a CPU within its size limit, drcnet.eval.baselines.MAX_PIXELS, and is skipped with a note above it),
so the page shows DRCNet and the quick baselines at once and BM3D when it arrives.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from drcnet.demo.inputs import Prepared, quality, to_pil
from drcnet.demo.inspect_tab import prepare_small
from drcnet.demo.messages import DemoError
from drcnet.demo.restore_tab import describe_info
from drcnet.demo.settings import InputSettings
from drcnet.demo.figures import plt, label_lines, labelled, save_figure

INPUT, CLEAN = "input (degraded)", "clean reference"
SLOW = {"bm3d"}                      # baselines run after every other method (seconds, within its size limit)
HEADERS = ["method", "PSNR (dB)", "SSIM", "seconds", "rank"]


@dataclass
class CompareResult:
    gallery: list[tuple[Image.Image, str]]
    table: list[list]                # HEADERS; sorted by PSNR (best first) when a reference is known
    headers: list[str]
    notes: list[str]
    images: dict[str, np.ndarray] = field(default_factory=dict)   # name -> uint8 HxWx3: input, clean, results
    pending: list[str] = field(default_factory=list)              # slow methods still to come


def baseline_info(prepared: Prepared, task: str) -> tuple[dict, list[str]]:
    """The info dict the baselines need: the true one for synthetic degradations and premade examples (whose
    sigma or kernel seed is recorded); estimated (sigma) or absent (kernel) for other photos."""
    if prepared.synthetic:
        return prepared.info, []
    if prepared.info:
        return prepared.info, [f"baselines use the example's known degradation: {describe_info(prepared.info)}"]
    if task == "denoise":
        from skimage.restoration import estimate_sigma
        sigma = float(estimate_sigma(prepared.degraded, channel_axis=-1, average_sigmas=True)) * 255
        return {"task": task, "sigma": sigma}, [f"baselines use an estimated noise sigma of {sigma:.1f}"]
    return {"task": task}, []


def _methods(registry, prepared: Prepared, task: str, info: dict, notes: list[str]):
    """(name, run) pairs; a DRCNet run returns {name: image} so that stage 1 comes from the same forward."""
    # imported on first use: skimage.restoration is slow to import
    from drcnet.eval.baselines import BASELINES, size_limit_note
    x = prepared.degraded
    methods: list[tuple[str, Callable[[], dict]]] = []
    main = registry.checkpoint(task)
    for path in ([main] if main.is_file() else []) + registry.ablations(task):
        name = "DRCNet" if path == main else f"DRCNet {path.stem[len(task) + 1:]}"
        methods.append((name, _model_runner(registry, path, task, x, name, stage1=path == main)))
    if not main.is_file():
        notes.append(f"no {main.name}: DRCNet is missing from the comparison")
    for name, fn in BASELINES[task].items():
        if "nonblind" in name and "kernel" not in info:
            notes.append(f"{name} skipped: it needs the true blur kernel (synthetic blur only)")
            continue
        if too_large := size_limit_note(name, x.shape):      # BM3D: seconds, not minutes
            notes.append(too_large)
            continue
        methods.append((name, lambda fn=fn, name=name: {name: fn(x, info)}))
    # slow ones last, keeping the order otherwise
    return sorted(methods, key=lambda m: m[0] in SLOW)


def compare_steps(registry, image, task: str, settings: InputSettings = InputSettings(),
                  max_side: int | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> Iterator[CompareResult]:
    """Run every method; yield the comparison so far after the fast ones and after each slow one."""
    if max_side:
        from drcnet.demo.inputs import prepare
        prepared = prepare(image, task, settings, max_side=max_side, cache=registry.inputs,
                           max_pixels=registry.limits.max_pixels)
    else:
        prepared = prepare_small(registry, image, task, settings)
    info, notes = baseline_info(prepared, task)
    methods = _methods(registry, prepared, task, info, notes)
    if prepared.clean is None:
        notes.append("no clean reference: metrics need a synthetic degradation or an uploaded reference")
    images = {INPUT: prepared.degraded}
    if prepared.clean is not None:
        images[CLEAN] = prepared.clean
    timings = {INPUT: 0.0}
    for i, (name, run) in enumerate(methods):
        if name in SLOW and i == next(k for k, m in enumerate(methods) if m[0] in SLOW):
            yield _result(prepared, task, images, timings, notes, [m[0] for m in methods[i:]])
        if progress:
            progress(i, len(methods), name)
        start = time.perf_counter()
        try:
            outs = run()
        except Exception as e:   # one failing method must not sink the comparison
            notes.append(f"{name} failed: {type(e).__name__}: {e}")
            continue
        seconds = time.perf_counter() - start
        for out_name, out in outs.items():
            images[out_name] = out
            timings[out_name] = round(seconds, 3)
    yield _result(prepared, task, images, timings, notes, [])


def compare(registry, image, task: str, settings: InputSettings = InputSettings(),
            max_side: int | None = None) -> CompareResult:
    """The whole comparison at once (scripts, tests): the last step of compare_steps."""
    for result in compare_steps(registry, image, task, settings, max_side):
        pass
    return result


def _result(prepared, task, images, timings, notes, pending) -> CompareResult:
    """Table sorted by PSNR, best first, with the winner among the restorations marked; a gallery in the same
    order (input and clean reference first)."""
    rows = []
    for name, img in images.items():
        if name == CLEAN:
            continue
        q = quality(img, prepared.clean, task)
        rows.append([name, None if q is None else round(q["psnr"], 2), None if q is None else round(q["ssim"], 4),
                     timings[name], ""])
    if prepared.clean is not None:
        rows.sort(key=lambda r: -r[1])
        for k, row in enumerate(rows):
            row[4] = str(k + 1)
        best = next((r for r in rows if r[0] != INPUT), None)
        if best is not None:
            best[4] += " ★ best PSNR"
    gallery = [(to_pil(images[INPUT]), "input")]
    if CLEAN in images:
        gallery.append((to_pil(images[CLEAN]), CLEAN))
    for name, psnr_db, _, seconds, _ in rows:
        if name != INPUT:
            gallery.append((to_pil(images[name]), name + (f" ({psnr_db:.2f} dB)" if psnr_db is not None else "")
                            + f", {seconds:.2f} s"))
    notes = list(notes) + [f"{name} still running (a few seconds on a CPU); the table fills in when it is done"
                           for name in pending]
    as_uint8 = {k: np.round(np.clip(v, 0, 1) * 255).astype(np.uint8) for k, v in images.items()}
    return CompareResult(gallery, rows, list(HEADERS), notes, as_uint8, list(pending))


def _model_runner(registry, path: Path, task: str, x: np.ndarray, name: str, stage1: bool):
    def run():
        restorer = registry.restorer(path)
        with registry.lock(task):
            out = restorer.restore(x, return_stage1=stage1)       # as Restore serves it: the spec's tiles
        return {name: out[0], f"{name} stage 1": out[1]} if stage1 else {name: out}
    return run


# ---------------------------------------------------------------- slider pair, zoom, figure

def _pick(images: dict | None, name: str) -> np.ndarray:
    if not images:
        raise DemoError("Run the comparison first (the Compare button), then pick two results.")
    if name not in images:
        raise DemoError(f"{name!r} is not among this comparison's results ({', '.join(images)})")
    return images[name]


def compare_pair(images: dict | None, left: str, right: str) -> tuple[Image.Image, Image.Image]:
    """Two results for the before/after slider."""
    return Image.fromarray(_pick(images, left)), Image.fromarray(_pick(images, right))


def crop_box(shape, x: int, y: int, size: int) -> tuple[int, int, int, int]:
    """A size x size box centred on (x, y) and moved inside the image (smaller images: the whole image)."""
    h, w = shape[:2]
    sw, sh = min(int(size), w), min(int(size), h)
    x0 = min(max(int(x) - sw // 2, 0), w - sw)
    y0 = min(max(int(y) - sh // 2, 0), h - sh)
    return x0, y0, x0 + sw, y0 + sh


ZOOM_VIEW = 480                      # the zoom source's long side is enlarged to at least this many pixels


def zoom_scale(shape) -> int:
    """The integer factor that enlarges the zoom source (pixel copies, no smoothing) to at least ZOOM_VIEW px.

    Gradio's image preview draws its picture with CSS object-fit: scale-down (never enlarged) but turns a click
    into pixel coordinates assuming that, so a small result sat at its natural size in the middle of the box and
    a click beside it (most of the box) sent no select event at all. Enlarged past the box, the picture fills it
    and every click in it lands on a pixel; zoom_point maps it back."""
    return max(1, -(-ZOOM_VIEW // max(shape[:2])))


def zoom_source(images: dict | None, name: str = INPUT) -> Image.Image:
    """The picture to click for the zoom: one result enlarged by zoom_scale."""
    img = _pick(images, name)
    s = zoom_scale(img.shape)
    return Image.fromarray(img).resize((img.shape[1] * s, img.shape[0] * s), Image.NEAREST)


def zoom_point(images: dict | None, x: int, y: int) -> tuple[int, int]:
    """A click on zoom_source (its pixel coordinates) as a point of the results."""
    s = zoom_scale(_pick(images, INPUT).shape)
    return int(x) // s, int(y) // s


SHORT_NAMES = {INPUT: "input", CLEAN: "clean", "wiener_nonblind": "Wiener", "richardson_lucy_nonblind": "R-L",
               "tv_chambolle": "TV", "wavelet_bayes": "wavelet", "nlm": "NLM", "bm3d": "BM3D",
               "median5x5": "median 5x5"}


def short_name(name: str) -> str:
    """A method's label short enough to sit under a thumbnail ("DRCNet stage 1" -> "DRCNet s1")."""
    return SHORT_NAMES.get(name, name.replace(" stage 1", " s1"))


def table_order(images: dict, table: list[list] | None = None) -> list[str]:
    """The results in the metrics table's order (best PSNR first when a reference is known), the clean
    reference first; any result the table does not list (yet) at the end."""
    listed = [row[0] for row in (table or []) if row and row[0] in images]
    return [n for n in (CLEAN,) if n in images] + listed + [n for n in images if n != CLEAN and n not in listed]


def zoom_crops(images: dict | None, x: int, y: int, size: int = 64, display: int = 256,
               table: list[list] | None = None) -> list[tuple[Image.Image, str]]:
    """The same crop around (x, y) from every result in the table's order, enlarged without smoothing (pixels
    stay pixels), each with its short label (and PSNR) drawn under it rather than over it."""
    first = _pick(images, INPUT)
    x0, y0, x1, y1 = crop_box(first.shape, x, y, size)
    scale = max(1, display // max(x1 - x0, y1 - y0))
    psnr_of = {row[0]: row[1] for row in (table or [])}
    names = table_order(images, table)
    labels = [short_name(n) + (f" {psnr_of[n]:.2f} dB" if psnr_of.get(n) is not None else "") for n in names]
    width = (x1 - x0) * scale
    lines = max(len(label_lines(label, width)) for label in labels)      # one height for the whole row
    return [(labelled(Image.fromarray(images[n][y0:y1, x0:x1]).resize((width, (y1 - y0) * scale), Image.NEAREST),
                      label, lines=lines), label) for n, label in zip(names, labels)]


def compare_figure(registry, images: dict | None, table: list[list] | None = None, point=None, size: int = 64,
                   dpi: int = 200) -> list[Path]:
    """Every result with its title (and PSNR), the zoom box, a row of zoomed crops, and, with a clean
    reference, the absolute error of each result on one shared colour bar: PNG and PDF for slides."""
    _pick(images, INPUT)
    psnr_of = {row[0]: row[1] for row in (table or [])}
    names = table_order(images, table)
    clean = images.get(CLEAN)
    h, w = images[INPUT].shape[:2]
    box = crop_box(images[INPUT].shape, *(point or (w // 2, h // 2)), size)
    rows = 3 if clean is not None else 2
    fig, axes = plt().subplots(rows, len(names), figsize=(2.6 * len(names), 2.9 * rows), dpi=dpi,
                                squeeze=False)
    fig.suptitle("Comparison" + (" (PSNR against the clean reference)" if clean is not None else ""), fontsize=12)
    err_im = None
    for k, name in enumerate(names):
        img = images[name]
        a = axes[0][k]
        a.imshow(img)
        a.add_patch(plt().Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                     color="yellow", lw=1))
        title = short_name(name) + (f"\n{psnr_of[name]:.2f} dB" if psnr_of.get(name) is not None else "")
        a.set_title(title, fontsize=8)
        z = axes[1][k]
        z.imshow(img[box[1]:box[3], box[0]:box[2]], interpolation="nearest")
        z.set_xlabel(short_name(name), fontsize=7)          # under the crop, never over it
        if clean is not None:
            e = axes[2][k]
            err = np.abs(img.astype(np.float32) - clean.astype(np.float32)).mean(-1) / 255
            err_im = e.imshow(err, cmap="inferno", vmin=0, vmax=0.25)
            e.set_title("|result - clean|", fontsize=7)
    for a in axes.ravel():
        a.set_xticks([]), a.set_yticks([])
    if err_im is not None:
        fig.colorbar(err_im, ax=axes[2].tolist(), fraction=0.02, pad=0.01, label="mean abs. error (0-1)")
    return save_figure(fig, "compare", registry.outputs)
