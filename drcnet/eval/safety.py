"""The safety gate: what visitors bring must not break.

A visitor's photo is usually clean or lightly degraded, full size (the app runs images up to 512 px whole), and
the first thing a talk audience sees. So, for every task, a shipped checkpoint must:

- give a clean photo back nearly unchanged: PSNR against itself at least CLEAN_MEAN_DB on average (deblur
  sharpens, so it gets less) and, for denoise and derain, CLEAN_EACH_DB on every photo;
- move no BLOCK x BLOCK px block of a clean or lightly degraded photo by more than BLOCK_MOVE grey levels
  (the mean of a colour channel over the block: a colour blotch or a rainbow band moves it, detail does not),
  and put no block of an example's output farther than that from its clean reference (example_moves);
- give a lightly degraded photo (LIGHT: noise sigma 2, 5 and each task's lightest setting) back at
  LIGHT_EACH_DB or better against the clean photo, or at least no more than LIGHT_LOSS_DB below the input itself
  (a 7 px motion blur starts below LIGHT_EACH_DB: it must not get worse);
- agree with itself: whole and tiled, eager and compiled outputs within AGREE_DB of each other.

Every restore here goes through the Restorer as the app runs it (its checkpoint's inference spec), so the
gate judges what a visitor is served, tile blending included.

Measured at 256 px and at the app's 512 px (centre crops), on the test photos when shipping (drcnet.ops.release) and
on the clean photos and examples of assets/ in the test suite (tests/test_safety.py). The numbers of the shipped
checkpoints are in their cards ("Safety on clean photos"); `python scripts/safety.py` prints them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drcnet.core.metrics import psnr
from drcnet.data.degrade import degrade

SIZES = (256, 512)
CLEAN_MEAN_DB = {"denoise": 34.0, "derain": 34.0, "deblur": 30.0}
CLEAN_EACH_DB = {"denoise": 30.0, "derain": 30.0}
LIGHT_EACH_DB = 28.0
LIGHT_LOSS_DB = 1.0
BLOCK, BLOCK_MOVE = 32, 40.0
AGREE_DB = 40.0
# The lightly degraded inputs: noise of sigma 2 and 5 for every task (a phone photo), and each task's lightest
# own setting. sigma 0 is the clean photo itself.
LIGHT = {
    "denoise": [{"name": "sigma2", "sigma": 2}, {"name": "sigma5", "sigma": 5}, {"name": "sigma15", "sigma": 15}],
    "derain": [{"name": "sigma2", "noise": 2}, {"name": "sigma5", "noise": 5}, {"name": "light", "setting": "light"}],
    "deblur": [{"name": "sigma2", "noise": 2}, {"name": "sigma5", "noise": 5}, {"name": "kernel7", "size": 7}],
}


def eight_bit(image: np.ndarray) -> np.ndarray:
    """An image in [0, 1] rounded to 8 bits, as a saved photo would be (the gate scores what a visitor gets)."""
    return np.round(np.clip(image, 0, 1) * 255) / 255


def block_move(out: np.ndarray, ref: np.ndarray, block: int = BLOCK) -> float:
    """The largest change, in grey levels (0-255), of one colour channel's mean over a block x block tile."""
    h, w = (out.shape[0] // block) * block, (out.shape[1] // block) * block
    if h == 0 or w == 0:
        return float(np.abs(out.mean((0, 1)) - ref.mean((0, 1))).max() * 255)
    diff = (out[:h, :w] - ref[:h, :w]).reshape(h // block, block, w // block, block, -1).mean((1, 3))
    return float(np.abs(diff).max() * 255)


def pixels_off(out: np.ndarray, ref: np.ndarray, levels: float = 40) -> int:
    """How many pixels differ by more than `levels` grey levels in some channel."""
    return int((np.abs(np.round(out * 255) - np.round(ref * 255)).max(-1) > levels).sum())


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[y:y + side, x:x + side]


def lightly_degraded(clean: np.ndarray, task: str, setting: dict, seed: int = 0) -> np.ndarray:
    """One LIGHT input: plain Gaussian noise (noise = sigma in grey levels) or the task's own degradation."""
    rng = np.random.default_rng(seed)
    setting = {k: v for k, v in setting.items() if k != "name"}
    if "noise" in setting:
        noisy = clean + rng.normal(0.0, setting["noise"] / 255.0, clean.shape)
        return (np.round(np.clip(noisy, 0, 1) * 255) / 255).astype(np.float32)
    return degrade(clean, task, rng, **setting)[0]


@dataclass
class Report:
    """Every score of one checkpoint on a set of clean photos, and the failures against the bounds."""
    task: str
    rows: list[dict] = field(default_factory=list)      # photo, size, setting, psnr, block_move, pixels_off

    def clean_psnr(self, size: int) -> list[float]:
        return [r["psnr"] for r in self.rows if r["size"] == size and r["setting"] == "clean"]

    def summary(self) -> dict:
        """{size: {setting: {"mean": dB, "worst": dB, "block_move": grey levels}}}."""
        out: dict = {}
        for r in self.rows:
            out.setdefault(r["size"], {}).setdefault(r["setting"], []).append(r)
        return {size: {s: {"mean": float(np.mean([r["psnr"] for r in rows])),
                           "worst": float(min(r["psnr"] for r in rows)),
                           "block_move": float(max(r["block_move"] for r in rows))}
                       for s, rows in by_setting.items()}
                for size, by_setting in out.items()}

    def failures(self) -> list[str]:
        failures = []
        for size in sorted({r["size"] for r in self.rows}):
            clean = self.clean_psnr(size)
            if clean and np.mean(clean) < CLEAN_MEAN_DB[self.task]:
                failures.append(f"{size} px: clean photos come back at {np.mean(clean):.2f} dB on average "
                                f"(bound {CLEAN_MEAN_DB[self.task]} dB)")
        for r in self.rows:
            where = f"{r['photo']} at {r['size']} px, {r['setting']}"
            each = CLEAN_EACH_DB.get(self.task) if r["setting"] == "clean" else \
                min(LIGHT_EACH_DB, r.get("input_psnr", float("inf")) - LIGHT_LOSS_DB)
            if each is not None and r["psnr"] < each:
                failures.append(f"{where}: {r['psnr']:.2f} dB (bound {each:.2f} dB)")
            if r["block_move"] > BLOCK_MOVE:
                failures.append(f"{where}: a {BLOCK} px block moved by {r['block_move']:.0f} grey levels "
                                f"(bound {BLOCK_MOVE:g})")
        return failures


def clean_photo_report(task: str, restore, photos: dict, sizes=SIZES, light: bool = True) -> Report:
    """Restore each clean photo (name -> HxWx3 float32 in [0, 1]) and its LIGHT variants at each size (centre
    crops of at most size x size px: a smaller photo is used whole and counted at that size, as the app would
    run it); restore: HxWx3 float32 -> same."""
    report = Report(task)
    for name, photo in photos.items():
        for size in sizes:
            clean = np.ascontiguousarray(centre_crop(photo, size), np.float32)
            inputs = [("clean", clean)]
            if light:
                inputs += [(s["name"], lightly_degraded(clean, task, s)) for s in LIGHT[task]]
            for setting, degraded in inputs:
                out = np.clip(np.asarray(restore(degraded), np.float32), 0, 1)
                report.rows.append({"photo": name, "size": size, "setting": setting,
                                    "psnr": psnr(eight_bit(out), eight_bit(clean)),
                                    "input_psnr": psnr(eight_bit(degraded), eight_bit(clean)),
                                    "block_move": block_move(out, degraded),
                                    "pixels_off": pixels_off(out, degraded)})
    return report


def agreement(outputs: dict) -> dict:
    """PSNR of every output against the first one ({"whole": ..., "tiled": ..., "compiled": ...})."""
    names = list(outputs)
    first = outputs[names[0]]
    return {f"{names[0]} vs {n}": psnr(eight_bit(outputs[n]), eight_bit(first)) for n in names[1:]}


def markdown(report: Report) -> str:
    """The card's table: mean (worst) PSNR against the clean photo, and the largest block move, per setting."""
    summary = report.summary()
    settings = ["clean"] + [s["name"] for s in LIGHT[report.task]]
    lines = ["| size | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for size, row in sorted(summary.items()):
        cells = [f"{row[s]['mean']:.2f} ({row[s]['worst']:.2f}); {row[s]['block_move']:.0f}" if s in row else "-"
                 for s in settings]
        lines.append(f"| {size} px | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the photos the gate runs on

def asset_photos(assets=None) -> dict:
    """The clean photos of assets/ (*_clean.png), float32 RGB in [0, 1]: the gate's photos in the test suite."""
    return {p.name: _rgb(p) for p in sorted(_assets(assets).glob("*_clean.png"))}


def suite_photos(assets=None) -> dict:
    """What the test suite gates every shipped checkpoint on (tests/test_safety.py), at the app's 512 px: the
    clean photos of assets/ as they are (256-320 px), and two of them resized to 512 px wide (an upscaled photo
    is smooth, which is where whole-image statistics break)."""
    from PIL import Image

    photos = asset_photos(assets)
    for name in ("rocket_clean.png", "coffee_clean.png"):
        h, w = photos[name].shape[:2]
        big = Image.fromarray(np.round(photos[name] * 255).astype(np.uint8)).resize(
            (512, round(512 * h / w)), Image.LANCZOS)
        photos[name.replace(".png", "@512.png")] = np.asarray(big, np.float32) / 255
    return photos


def example_photos(task: str, assets=None) -> dict:
    """{file: float32 RGB in [0, 1]} of the inputs of every example of assets/examples.json of this task: real
    photos of the task (the gate checks them, the compiled graph is checked against eager on them)."""
    from drcnet.core.examples import example_entries

    folder = _assets(assets)
    return {e["input"]: _rgb(folder / e["input"]) for e in example_entries(task, folder)}


def example_references(task: str, assets=None) -> dict:
    """{file: its clean reference, float32 RGB in [0, 1]} for the examples of this task that have one."""
    from drcnet.core.examples import example_entries

    folder = _assets(assets)
    return {e["input"]: _rgb(folder / e["reference"]) for e in example_entries(task, folder) if e.get("reference")}


def _assets(assets):
    from drcnet.core.paths import ASSETS

    return ASSETS if assets is None else assets


def _rgb(path) -> np.ndarray:
    from drcnet.serve.imageio import load_image

    return np.ascontiguousarray(load_image(path).rgb, np.float32)


def example_moves(task: str, restore, assets=None) -> dict:
    """{example: largest block move} for every example of this task, restored as the app does: a colour blotch on
    a real photo shows here. An example with a clean reference is measured against the reference, one without
    (real noise, a photo that the app degrades itself) against its input. Why: removing heavy rain moves a block
    towards the clean photo by as much as the rain changed it (astronaut_derain.png: the clean photo is 49 grey
    levels from the input in one block), which is the task done, not a blotch; a blotch moves the output away
    from the clean photo, and that is what the bound is for."""
    references = example_references(task, assets)
    return {name: block_move(np.clip(restore(photo), 0, 1), references.get(name, photo))
            for name, photo in example_photos(task, assets).items()}


def gate(task: str, restorer, photos: dict, sizes=SIZES, assets=None) -> dict:
    """The whole gate for one restorer: the clean-photo report, the examples, and the failures (empty: pass)."""
    restore = restorer.restore          # as the app runs it: the checkpoint's inference spec
    report = clean_photo_report(task, restore, photos, sizes)
    moves = example_moves(task, restore, assets)
    failures = report.failures() + [f"example {name}: a {BLOCK} px block moved by {m:.0f} grey levels "
                                    f"(bound {BLOCK_MOVE:g})" for name, m in moves.items() if m > BLOCK_MOVE]
    return {"task": task, "summary": report.summary(), "examples": moves, "failures": failures,
            "table": markdown(report), "statistics": restorer.describe_statistics()}


# ---------------------------------------------------------------- before / after, for the cards

def before_after(task: str, checkpoint, photos: dict, sizes=SIZES, log=print) -> str:
    """Markdown: the test set (mean PSNR per setting) and the clean-photo gate at each size, with the paper's
    whole-image statistics ("whole", the behaviour before) and the engine's default ("matched")."""
    from drcnet.serve.engine import Restorer
    from drcnet.eval.evaluate import evaluate

    restorer = Restorer.from_checkpoint(checkpoint)
    settings = _settings(task)
    lines = ["| statistics | size | " + " | ".join(settings) + " | clean photos: mean (worst) | "
             "largest block move |", "|---" * (len(settings) + 4) + "|"]
    for statistics in ("whole", "matched"):
        restorer.set_statistics(statistics)
        for size in sizes:
            log(f"{task}: {statistics} statistics, {size} px ...")
            restore = restorer.restore      # as the app: the spec's tiles, or one pass up to WHOLE_TILE px
            res = evaluate(task, restore, photos, baselines=[], max_side=size)
            report = clean_photo_report(task, restore, photos, (size,))
            clean = report.summary()[size]["clean"]
            worst_move = max(r["block_move"] for r in report.rows)
            cells = [f"{res['mean'][s]['drcnet']['psnr']:.2f}" for s in res["settings"]]
            lines.append(f"| {statistics} | {size} px | " + " | ".join(cells) +
                         f" | {clean['mean']:.2f} ({clean['worst']:.2f}) | {worst_move:.0f} |")
    return "\n".join(lines)


def _settings(task: str) -> list[str]:
    from drcnet.data.degrade import eval_settings

    return [s["name"] for s in eval_settings(task)]
