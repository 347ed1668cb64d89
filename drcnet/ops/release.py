"""Releasing weights: evaluate a candidate beside the shipped checkpoint, gate it, write its card, and replace
checkpoints/<task>.* only when it is better.

    python scripts/ship_checkpoint.py --task deblur --run runs/deblur-x                 # -> runs/candidates/deblur/
    python scripts/ship_checkpoint.py --task deblur --promote                           # -> checkpoints/deblur.*

A candidate folder holds the candidate's float16 weights, its evaluations (<task>.val.json, <task>.test.json),
its card (<task>.md) and decision.json. The decision ships it only if it passes the grid gate (whole-image and
local grid ratios on the test set, and the real photos of REAL_PHOTOS relative to their input) AND beats the
shipped weights on the mean validation PSNR AND the mean test PSNR over the task's settings. Every number in
the card comes from here.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from drcnet.core.device import cpu_name
from drcnet.core.files import jsonable, read_jsonl
from drcnet.eval.evaluate import GRID_BOUND, LOCAL_GRID_BOUND, evaluate, local_grid_ratio
from drcnet.model.card import front_matter, with_front_matter
from drcnet.ops.jobs import ROOT
from drcnet.core.paths import SHIPPED, checkpoint_file
CANDIDATES = ROOT / "runs" / "candidates"
# Real degraded photos (no clean reference) that a task's outputs must pass the local gate on, relative to the
# input: the app's showcase camera-shake photo, where the round-two deblur model printed a row of dots.
REAL_PHOTOS = {"deblur": ["assets/clock_motion.png"]}
CARD_MAX_SIDE = 256        # the evaluation crops of every shipped card: candidates are compared at the same size
SPLIT_FILES = {"val": "val", "test": "test", "test, with BM3D": "test-BM3D", "test, 512 px": "test-512"}
APP_SIDE = 512             # the app's working size (uploads are downscaled to it): the cards report it too


class GridArtifactError(SystemExit):
    """The gate: a checkpoint whose outputs carry a grid is not shipped."""


def gate_failures(results: dict, real_photos: dict | None = None) -> list[str]:
    """Why a test-set evaluation (and the real-photo scores) fails the grid gate; empty if it passes."""
    failures = []
    worst = results["grid_max"]["drcnet"]
    if worst > GRID_BOUND:
        failures.append(f"its worst test image has a grid-artifact ratio of {worst:.2f} (bound {GRID_BOUND}; "
                        f"drcnet.eval.evaluate.grid_artifact_ratio)")
    local = results.get("grid_local_max", {}).get("drcnet")
    if local is not None and local > LOCAL_GRID_BOUND:
        failures.append(f"its worst test image has a local grid ratio of {local:.2f} (bound {LOCAL_GRID_BOUND}; "
                        f"drcnet.eval.evaluate.local_grid_ratio)")
    for photo, ratio in (real_photos or {}).items():
        if ratio > LOCAL_GRID_BOUND:
            failures.append(f"{photo} has a local grid ratio of {ratio:.2f} against its input "
                            f"(bound {LOCAL_GRID_BOUND})")
    return failures


def check_grid(results: dict, source, real_photos: dict | None = None) -> float:
    """The gate as a refusal: GridArtifactError naming the reasons, else the worst whole-image ratio."""
    failures = gate_failures(results, real_photos)
    if failures:
        raise GridArtifactError(f"refusing to ship {source}: " + "; ".join(failures))
    return results["grid_max"]["drcnet"]


def real_photo_ratios(task: str, restore) -> dict:
    """local_grid_ratio of each of the task's real photos, restored, against the photo itself."""
    from drcnet.serve.imageio import load_image

    ratios = {}
    for name in REAL_PHOTOS.get(task, []):
        photo = np.ascontiguousarray(load_image(ROOT / name).rgb, np.float32)
        out = np.clip(np.asarray(restore(photo), np.float32), 0.0, 1.0)
        ratios[name] = local_grid_ratio(out, photo)
    return ratios


def evaluate_weights(task: str, weights: Path, max_side: int = CARD_MAX_SIDE, sets=("val", "test"),
                     bm3d_settings=("sigma25",), log=print, spec=None) -> dict:
    """{label: evaluation} for each set (cheap baselines beside DRCNet; denoise also BM3D at bm3d_settings on
    the test set), plus "real_photos" (the local grid ratios of REAL_PHOTOS) and "latency_512_s"."""
    from drcnet.eval.baselines import BASELINES
    from drcnet.data.datasets import split_images
    from drcnet.serve.engine import Restorer

    restorer = Restorer.from_checkpoint(weights, spec=spec)
    cheap = [name for name in BASELINES[task] if name != "bm3d"]
    runs = [(split, split, None, cheap) for split in sets]
    if task == "denoise" and "bm3d" in BASELINES["denoise"] and bm3d_settings and "test" in sets:
        runs.append(("test, with BM3D", "test", list(bm3d_settings), ["nlm", "bm3d"]))
    results = {}
    for label, split, settings, baselines in runs:
        log(f"evaluating {weights} on {label} ...")
        results[label] = jsonable(evaluate(task, restorer.restore, split_images(split), settings=settings,
                                            baselines=baselines, max_side=max_side))
        results[label]["statistics"] = restorer.describe_statistics()
    if "test" in sets:       # what the app does: photos up to 512 px, restored as the app restores them
        log(f"evaluating {weights} on test, {APP_SIDE} px ...")
        results["test, 512 px"] = jsonable(evaluate(task, restorer.restore,
                                                     split_images("test"), baselines=[], max_side=APP_SIDE))
        log(f"safety gate of {weights} (clean and lightly degraded test photos, 256 and {APP_SIDE} px) ...")
        results["safety"] = jsonable(safety_gate(task, restorer, split_images("test")))
    results["real_photos"] = real_photo_ratios(task, restorer.restore)      # as the app serves them
    results["latency_512_s"] = latency_512(weights, spec=spec)
    return results


def safety_gate(task: str, restorer, photos: dict) -> dict:
    """drcnet.eval.safety.gate on these photos at 256 and 512 px and on the examples; the rendered table kept."""
    from drcnet.eval import safety

    return safety.gate(task, restorer, photos, sizes=safety.SIZES)


def shipped_results(task: str, checkpoints: Path, max_side: int, log=print) -> dict:
    """The shipped weights' val and test evaluations: the JSON files beside them when they were made with the
    same crop size, else measured now (DRCNet and the input only)."""
    from drcnet.data.datasets import split_images
    from drcnet.serve.engine import Restorer

    results = {}
    for split in ("val", "test"):
        saved = checkpoint_file(checkpoints, task, split)
        restorer = Restorer.from_checkpoint(checkpoint_file(checkpoints, task))
        if saved.is_file() and same_protocol(json.loads(saved.read_text()), max_side,
                                             restorer.describe_statistics()):
            results[split] = json.loads(saved.read_text())
            continue
        log(f"scoring the shipped {task} weights on {split} ...")
        results[split] = jsonable(evaluate(task, restorer.restore, split_images(split), baselines=[],
                                            max_side=max_side))
        results[split]["statistics"] = restorer.describe_statistics()
    return results


def same_protocol(saved: dict, max_side: int, statistics: str) -> bool:
    """Whether a saved evaluation was made the way a candidate is evaluated now: the same crops, and the same
    engine statistics and tiling (Restorer.describe_statistics(); files from before "matched" statistics record
    none: they ran whole images; files from before the inference spec record only "matched")."""
    from drcnet.model.inference import InferenceSpec

    return saved.get("max_side") == max_side and saved.get("statistics", InferenceSpec().describe()) == statistics


def mean_psnr(results: dict) -> float:
    """DRCNet's PSNR averaged over the evaluation's settings (each a mean over its images)."""
    return float(np.mean([results["mean"][s]["drcnet"]["psnr"] for s in results["settings"]]))


def decide(candidate: dict, shipped: dict) -> dict:
    """Ship only if the gate passes and the candidate is ahead on both the validation and the test mean."""
    failures = gate_failures(candidate["test"], candidate.get("real_photos"))
    failures += [f"safety: {f}" for f in candidate.get("safety", {}).get("failures", [])]
    before = {split: mean_psnr(shipped[split]) for split in ("val", "test")}
    after = {split: mean_psnr(candidate[split]) for split in ("val", "test")}
    reasons = [f"gate: {f}" for f in failures]
    reasons += [f"{split}: {after[split]:.3f} dB is not above the shipped {before[split]:.3f} dB"
                for split in ("val", "test") if not after[split] > before[split]]
    settings = candidate["test"]["settings"]
    return {"ship": not reasons, "reasons": reasons, "gate": "pass" if not failures else "fail",
            "val_before": round(before["val"], 3), "val_after": round(after["val"], 3),
            "test_before": round(before["test"], 3), "test_after": round(after["test"], 3),
            "test_settings": {s: [round(shipped["test"]["mean"][s]["drcnet"]["psnr"], 2),
                                  round(candidate["test"]["mean"][s]["drcnet"]["psnr"], 2)] for s in settings},
            "grid_max": candidate["test"]["grid_max"]["drcnet"],
            "grid_local_max": candidate["test"].get("grid_local_max", {}).get("drcnet"),
            "real_photos": candidate.get("real_photos", {})}


def describe(decision: dict) -> str:
    verdict = "SHIP: better on validation and test, gate passed" if decision["ship"] else \
        "KEEP the shipped weights: " + "; ".join(decision["reasons"])
    return (f"validation {decision['val_before']:.2f} -> {decision['val_after']:.2f} dB, test "
            f"{decision['test_before']:.2f} -> {decision['test_after']:.2f} dB, gate {decision['gate']}: {verdict}")


def candidate_spec(task: str, weights: Path, checkpoints: Path):
    """The tiling a candidate is judged and shipped with: the shipped checkpoint's (a retrained model keeps the
    tiles that passed the gate, e.g. derain's 128 px; see docs/design.md section 11), else the weights' own."""
    from drcnet.model.checkpoint import read_metadata
    from drcnet.model.inference import InferenceSpec

    shipped = checkpoint_file(checkpoints, task)
    return InferenceSpec.from_meta(read_metadata(shipped if shipped.is_file() else weights))


def make_candidate(task: str, weights: Path, folder: Path, checkpoints: Path = SHIPPED,
                   max_side: int = CARD_MAX_SIDE, curve=(), source: str = "", evaluations: dict | None = None,
                   log=print) -> dict:
    """Write the candidate (float16 weights, evaluations, card, decision.json) into folder; return the decision.
    evaluations: already measured {val, test, real_photos} (the relay's tests pass fake ones)."""
    from drcnet.model.checkpoint import load_checkpoint, save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob(f"{task}.*"), folder / "decision.json"]:   # a previous candidate's files
        stale.unlink(missing_ok=True)
    spec = candidate_spec(task, weights, checkpoints)
    candidate = evaluations or evaluate_weights(task, weights, max_side, log=log, spec=spec)
    shipped = shipped_results(task, checkpoints, max_side, log=log)
    decision = decide(candidate, shipped)
    for label, res in candidate.items():
        if label in SPLIT_FILES:
            (folder / f"{task}.{SPLIT_FILES[label]}.json").write_text(json.dumps(res, indent=1) + "\n")
    (checkpoint_file(folder, task, "previous")).write_text(json.dumps(shipped["test"], indent=1) + "\n")
    model, meta = load_checkpoint(weights)
    metrics = {label: res["mean"] for label, res in candidate.items() if label in SPLIT_FILES}
    metrics.update(grid_max_test=decision["grid_max"], grid_local_max_test=decision["grid_local_max"],
                   real_photos=decision["real_photos"], latency_512_s=candidate["latency_512_s"])
    save_checkpoint(checkpoint_file(folder, task), model, task=task, preset=meta.get("preset", ""),
                    training=meta.get("training", {}), metrics=jsonable(metrics), dtype="float16",
                    inference=spec,
                    **({"extra": {"weights": meta["weights"]}} if "weights" in meta else {}))
    write_card(task, folder, model, meta, candidate, shipped["test"], metrics["latency_512_s"], list(curve),
               source, max_side, checkpoints)
    (folder / "decision.json").write_text(json.dumps({"task": task, "source": source, **decision}, indent=1) + "\n")
    log(describe(decision))
    return decision


def promote(task: str, folder: Path, checkpoints: Path = SHIPPED, force: bool = False) -> list[Path]:
    """Replace checkpoints/<task>.* by the candidate's files; refused unless its decision says ship."""
    decision = json.loads((folder / "decision.json").read_text())
    if not decision["ship"] and not force:
        raise SystemExit(f"not promoting {folder}: {describe(decision)}")
    copied = []
    for path in sorted(folder.glob(f"{task}.*")):      # each file whole or not at all: copy, then rename
        partial = checkpoints / (path.name + ".partial")
        shutil.copyfile(path, partial)
        partial.replace(checkpoints / path.name)
        copied.append(checkpoints / path.name)
    return copied


def latency_512(weights: Path, repeats: int = 5, spec=None) -> dict:
    """Median seconds to restore one 512x512 image on this machine (eager), as the app serves it (the inference
    spec) and in one whole pass (the paper's statistics)."""
    from drcnet.eval.timing import median_seconds
    from drcnet.serve.engine import Restorer

    restorer = Restorer.from_checkpoint(weights, spec=spec)
    image = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32)

    def whole():
        with restorer.using(statistics="whole"):
            restorer.restore(image, tile=0)

    seconds = {name: round(median_seconds(fn, repeats, restorer.device), 3)
               for name, fn in (("served", lambda: restorer.restore(image)), ("whole", whole))}
    return {**seconds, "served_as": restorer.describe_statistics(), "device": str(restorer.device),
            "precision": restorer.precision, "cpu": cpu_name()}


def validation_curve(source: Path, task: str | None = None) -> list[tuple[int, float]]:
    """(iteration, validation PSNR) of a run folder's log.jsonl, or of one task of a burst's burst.json."""
    source = Path(source)
    if source.is_file() and source.suffix == ".json":
        records = next((r.get("log", []) for r in json.loads(source.read_text()).get("train", [])
                        if r.get("task") == task), [])
    else:
        records = read_jsonl(source / "log.jsonl")
    return [(r["iter"], r["val_psnr"]) for r in records if "val_psnr" in r]


# ---------------------------------------------------------------------------------------------------- the card

DEGRADATIONS = {
    "denoise": "training: Gaussian sigma ~ U[0, 55]/255, one blind model; evaluation: sigma 15, 25, 50",
    "derain": "training: random light and heavy synthetic streak layers (drcnet.data.degrade.RAIN_PRESETS), screen "
              "blending; evaluation: the light and heavy presets, PSNR/SSIM on Y",
    "deblur": "training: random camera-trajectory kernels (the recipe's --blur-kernels), then noise 0.01 and 8-bit "
              "rounding; evaluation: four fixed kernels (13, 19, 25, 31 px)",
}
LEGS_HEADING = "## Relay legs"


def write_card(task, folder, model, meta, results, previous, latency, curve, source, max_side, checkpoints):
    """<task>.md in folder: YAML front matter for the Hub (its model-index made from the test evaluation), how
    the weights were made, their target, the hand-written assessment (checkpoints/<task>.notes.md), the
    comparison with the weights they would replace, every evaluation table, and the relay legs recorded so far
    (checkpoints/<task>.legs.json)."""
    from drcnet.eval.evaluate import markdown_table
    from drcnet.model.network import count_parameters
    from drcnet.train.recipe import load_recipe

    tr = meta.get("training", {})
    flag = "--weights" if str(source).endswith(".safetensors") else "--run"
    command = f"python scripts/ship_checkpoint.py --task {task} {flag} {source} --max-side {max_side}"
    lines = [
        f"# DRCNet {task} checkpoint (`{task}.safetensors`)", "",
        f"Trained by this project's own trainer (loss: {tr.get('loss', '?')}). All numbers below were measured by "
        f"`{command}` (drcnet.ops.release; the evaluation of `python -m drcnet.evaluate --task {task} --checkpoint "
        f"checkpoints/{task}.safetensors --set val|test --max-side {max_side}`).", "",
        "## Model and training", "", "| | |", "|---|---|",
        f"| preset | `{meta.get('preset')}` ({count_parameters(model):,} parameters, t = {model.cfg.t}, "
        f"delta = {model.cfg.delta}, region statistics `{model.cfg.region_stats}`) |",
        f"| data | {tr.get('data', '?')} |",
        f"| degradations | {DEGRADATIONS[task]} |",
        f"| iterations | {tr.get('iterations', '?')} (schedule: {tr.get('schedule', 'iterations')}, "
        f"{tr.get('planned_iterations', '?')} planned) |",
        f"| batch x patch | {tr.get('batch', '?')} x {tr.get('patch', '?')}px |",
        f"| loss | {loss_weight(tr)}, lr {tr.get('lr', '?')} (Adam, cosine) |",
        f"| weights | {meta.get('weights', 'raw')} |",
        f"| warm start | {('from ' + tr['init']) if tr.get('init') else 'none recorded'} |",
        f"| hardware | {tr.get('hardware', '?')} |",
        f"| wall time | {fmt_seconds(tr.get('wall_time_s'))} |",
        f"| restore 512x512 (eager) | {latency['served']:.2f} s as served ({latency['served_as']}), "
        f"{latency['whole']:.2f} s in one whole pass; median of 5 on {latency['cpu']}, {latency['device']}, "
        f"{latency['precision']} |", "",
        "Reproduce:", "", "```bash", "python scripts/fetch_data.py", tr.get("command", "?"), command,
        f"python scripts/ship_checkpoint.py --task {task} --promote", "```", ""]
    if curve:
        lines += ["Validation PSNR during training (fixed validation crops): " +
                  ", ".join(f"{it}: {p:.2f} dB" for it, p in curve), ""]
    lines += ["## Target", "", "Test set, mean PSNR: " + "; ".join(t.describe() for t in load_recipe(task).targets)
              + f"; and the grid gate (whole image {GRID_BOUND}, {LOCAL_GRID_BOUND} in windows)", ""]
    notes = checkpoint_file(checkpoints, task, "notes")
    if notes.is_file():                       # the hand-written assessment, kept across releases
        lines += [notes.read_text().strip(), ""]
    lines += ["## Against the weights it replaces (test set, same protocol)", "",
              previous_table(results["test"], previous), ""]
    if results.get("real_photos"):
        lines += ["Local grid ratio on real photos, against the input (gate " + f"{LOCAL_GRID_BOUND}): " +
                  ", ".join(f"`{k}` {v:.2f}" for k, v in results["real_photos"].items()), ""]
    if results.get("safety"):
        lines += safety_section(results["safety"])
    lines += ["## Evaluation", ""]
    for label, res in results.items():
        if label in SPLIT_FILES:
            lines += [f"### {label} (centre crops of at most {max_side} px)", "", markdown_table(res), ""]
    card = checkpoint_file(folder, task, "card")
    card.write_text(front_matter(task, results["test"]) + "\n" + "\n".join(lines) + "\n")
    legs = checkpoint_file(checkpoints, task, "legs")
    if legs.is_file():
        write_legs_section(card, json.loads(legs.read_text()))


def refresh_front_matter(task: str, checkpoints: Path = SHIPPED) -> Path:
    """Rewrite the YAML front matter of checkpoints/<task>.md from <task>.test.json beside it (the body kept):
    for cards written before the front matter existed, or after an evaluation was re-measured."""
    card = checkpoint_file(checkpoints, task, "card")
    test = json.loads(checkpoint_file(checkpoints, task, "test").read_text())
    card.write_text(with_front_matter(card.read_text(), task, test))
    return card


def loss_weight(training: dict) -> str:
    """The card's loss with the weight it used: w of l1+fft's frequency term, else alpha (the contrastive term's)."""
    loss = training.get("loss", "?")
    if loss == "l1+fft":
        return f"{loss}, fft weight = {training.get('fft_weight', '?')}"
    return f"{loss}, alpha = {training.get('alpha', '?')}"


def safety_section(gate: dict) -> list[str]:
    """The card's "Safety on clean photos": drcnet.eval.safety's table on the test photos and what it found."""
    from drcnet.eval import safety

    verdict = "passed" if not gate["failures"] else "FAILED: " + "; ".join(gate["failures"])
    return ["## Safety on clean photos", "",
            f"Clean and lightly degraded test photos (centre crops of at most 256 and 512 px), restored as the app "
            f"does ({gate['statistics']}). Each cell: mean PSNR against the clean photo (worst photo); the "
            f"largest move of a {safety.BLOCK} px block's channel mean, in grey levels. Gate: clean photos "
            f">= {safety.CLEAN_MEAN_DB[gate['task']]:g} dB on average, blocks <= {safety.BLOCK_MOVE:g} grey levels "
            f"(drcnet/eval/safety.py): {verdict}.", "",
            gate["table"], "",
            "Examples of assets/ (largest block move against the clean reference, or against the input where there "
            "is none): " +
            ", ".join(f"`{k}` {v:.1f}" for k, v in gate["examples"].items()), ""]


def previous_table(new: dict, old: dict) -> str:
    """PSNR / SSIM per setting: the input, the shipped weights, the candidate; and each one's worst grid ratio."""
    settings = new["settings"]
    lines = ["| PSNR dB / SSIM | " + " | ".join(settings) + " | worst grid ratio |",
             "|---|" + "---|" * (len(settings) + 1)]
    for label, res, method in (("input", new, "input"), ("shipped", old, "drcnet"), ("candidate", new, "drcnet")):
        cells = [f"{res['mean'][s][method]['psnr']:.2f} / {res['mean'][s][method]['ssim']:.4f}" for s in settings]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {res['grid_max'][method]:.2f} |")
    return "\n".join(lines)


# Training settings outside a recipe that change what is learned: a leg run with one of them away from its default
# (e.g. --clean-share 0.1) trained under another recipe than the task's. A leg records each one its run set off
# the trainer's default (relay.run_recipe), so one missing from a leg's record was at that default.
LEVERS = ("clean_share", "clean_textures", "clean_stripes", "fft_weight", "stage1_weight", "mask_quantile", "t",
          "variant", "augment", "clip", "ema", "blur_kernels")


def trained_with(leg: dict) -> str:
    """What a leg trained on and from, in a few words: the settings it changed from its task's recipe of today
    (legs recorded before the relay kept their settings: "?"; a lever today's recipe sets that the leg's record
    lacks was at the trainer's default) and, when it did not start from the shipped weights (relay.py --init),
    the weights it continued."""
    from dataclasses import fields

    from drcnet.train.config import TrainConfig
    from drcnet.train.recipe import load_recipe

    if "recipe" not in leg:
        return "?"
    base = load_recipe(leg["task"]).train if leg.get("task") else {}
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    used = {**{k: defaults[k] for k in LEVERS if k in base}, **leg["recipe"]}
    changed = [f"{k} {v}" for k, v in used.items() if base.get(k) != v]
    words = ", ".join(changed) or "the recipe"
    return words + (f"; from {Path(leg['init']).name}" if leg.get("init") else "")


def write_legs_section(card: Path, legs: list[dict]) -> None:
    """Replace (or append) the card's "Relay legs" section by a table of every leg."""
    head = ["| date | hardware | minutes | trained with | iterations (per minute) | cumulative lr | val before -> after | "
            "test before -> after (per setting) | gate | shipped | worst target gap after; hours to the goal at this "
            "rate |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for leg in legs:
        per = ", ".join(f"{s} {b:.2f} -> {a:.2f}" for s, (b, a) in leg.get("test_settings", {}).items())
        rate = f" ({leg['iterations_per_minute']:g}/min{', under half the idle rate' if leg.get('slow') else ''})" \
            if leg.get("iterations_per_minute") else ""
        goal = "-" if leg.get("goal_gap_db") is None else (
            f"{leg['goal_gap_db']:+.2f} dB; " + ("met" if leg["goal_gap_db"] >= 0 else
                                                 f"{leg['hours_to_goal']} h" if leg.get("hours_to_goal")
                                                 else "no gain measured"))
        rows.append(f"| {leg['date']} | {leg.get('hardware', '?')} | {leg.get('minutes', '?')} | {trained_with(leg)} | "
                    f"{leg.get('iterations', '?')}{rate} | {leg.get('cumulative_lr', '?')} | "
                    f"{leg['val_before']:.2f} -> {leg['val_after']:.2f} | {leg['test_before']:.2f} -> "
                    f"{leg['test_after']:.2f} ({per}) | {leg['gate']} | {'yes' if leg['ship'] else 'no'} | {goal} |")
    section = [LEGS_HEADING, "", "Each leg continues the shipped weights with the task's recipe (drcnet/ops/relay.py); "
               "it is shipped only if it beats them on validation and test and passes the grid gate. Cumulative "
               "lr: the sum of the learning rate over the leg's iterations.", "", *head, *rows, "",
               *mask_table(legs), *alignment_table(legs)]
    text = card.read_text() if card.is_file() else ""
    before, _, after = text.partition(LEGS_HEADING)
    rest = after[after.find("\n## "):] if "\n## " in after else ""
    card.write_text(before.rstrip() + "\n\n" + "\n".join(section) + rest)


def mask_table(legs: list[dict]) -> list[str]:
    """The DFR mask along all legs: per block, the 99th percentile of M_sr (and the coverage at t, when any
    pixel crosses) at every validation, against the learning rate summed over the legs so far. Nothing in the
    loss aims M_sr at t (docs/design.md); this table shows whether long training moves it there anyway."""
    points, offset = [], 0.0
    for leg in legs:
        for m in leg.get("mask", []):
            points.append((offset + m["cum_lr"], m["blocks"]))
        offset += float(leg.get("cumulative_lr") or 0.0)
    if not points:
        return []
    names = list(points[0][1])
    t = points[0][1][names[0]]["t"]
    lines = ["### The DFR mask along the legs", "",
             f"Per block: 99th percentile of M_sr on the validation crops (the mask is M_sr >= t = {t:g}; "
             "coverage in brackets when any pixel crosses), against the learning rate summed over all legs.", "",
             "| summed lr | " + " | ".join(n.replace("stage", "s").replace(".level", " L") for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for cum, blocks in points:
        cells = [f"{b['p99']:.3f}" + (f" ({100 * b['coverage']:.2g} %)" if b["coverage"] > 0 else "")
                 for b in (blocks[n] for n in names)]
        lines.append(f"| {cum:.3g} | " + " | ".join(cells) + " |")
    return lines + [""]


def alignment_table(legs: list[dict]) -> list[str]:
    """Per leg and DFR block, the ROC-AUC of M_sr against the true degradation map on the validation photos,
    before -> after the leg (drcnet.ops.relay.leg_alignment; docs/science.md): does training move where the
    mask points? 0.5 is chance; a block that points away from the degradation is marked "away"."""
    from drcnet.eval.alignment import MARGIN, direction

    measured = [leg for leg in legs if leg.get("alignment", {}).get("after")]
    if not measured:
        return []
    names = list(measured[0]["alignment"]["after"])

    def cell(before, after):
        mark = " away" if direction(after) == "away" else ""
        return f"{before:.2f} -> {after:.2f}{mark}" if before is not None else f"{after:.2f}{mark}"
    lines = ["### Does M_sr point at the degradation? (per-block AUC, before -> after each leg)", "",
             f"ROC-AUC of each block's M_sr against the true degradation map ({measured[0]['alignment']['photos']}, "
             f"degraded as in docs/science.md). 0.5 is chance; \"away\": {0.5 - MARGIN:.2f} or below, the low "
             "responses mark the degradation, so M_sr >= t selects the wrong side.", "",
             "| date | " + " | ".join(n.replace("stage", "s").replace(".level", " L") for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for leg in measured:
        before, after = leg["alignment"].get("before", {}), leg["alignment"]["after"]
        lines.append(f"| {leg['date']} | " + " | ".join(cell(before.get(n), after[n]) for n in names) + " |")
    return lines + [""]


def fmt_seconds(s) -> str:
    if s is None:
        return "?"
    try:
        s = float(s)
    except (TypeError, ValueError):
        return str(s)
    return f"{s / 3600:.2f} h ({s:.0f} s)"
