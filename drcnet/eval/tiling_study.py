"""Which tile and overlap to serve with: the safety gate, the test set and the pixels each tiling costs.

    python scripts/tiling_study.py                     # every task, the CANDIDATES, a markdown table

For each candidate (tile, overlap) every shipped checkpoint runs with that inference spec (matched statistics):
- the safety gate (drcnet.eval.safety.gate) as the test suite runs it (safety.suite_photos at 512 px): PASS
  or the first failure;
- the test set at 512 px centre crops (the app's size): mean PSNR per setting;
- the pixel cost at 512 x 512 (pixels processed per image pixel) and the number of forwards of spec.batch tiles.
Times are taken by scripts/benchmark.py on an idle machine, not here (this runs beside other work).
The chosen spec is drcnet/model/inference.py's; the table is in docs/design.md ("Tile size and overlap").
"""
from __future__ import annotations

from drcnet.core.tasks import TASKS
from drcnet.model.inference import InferenceSpec
from drcnet.serve.tiling import pixel_cost, tiles_for

# (tile, overlap, batch): the training patch (128) up to about 1.5x it; batch = tiles per forward, chosen so a
# 512 px photo fills whole batches (9 tiles of 176, 16 of 136)
CANDIDATES = ((128, 32, 9), (136, 8, 8), (176, 8, 9), (192, 32, 9))
STUDY_SIZE = 512


def forwards(size: int, spec: InferenceSpec) -> int:
    return -(-len(tiles_for(size, size, spec.tile, spec.overlap)) // spec.batch)


def study_one(task: str, spec: InferenceSpec, photos: dict | None, checkpoint, log=print,
              min_region: int | None = None) -> dict:
    """photos: the test set (clean photos, float32), None for the gate alone. min_region: the DFR mask rule to
    run with (None: the checkpoint's; 0 is the paper's mask, drcnet/model/dfr.py)."""
    from drcnet.eval import safety
    from drcnet.eval.evaluate import evaluate
    from drcnet.model.checkpoint import load_checkpoint
    from drcnet.serve.engine import Restorer

    model, meta = load_checkpoint(checkpoint, **({} if min_region is None else {"min_region": min_region}))
    restorer = Restorer(model, meta=meta, spec=spec)
    log(f"{task}: tile {spec.tile}, overlap {spec.overlap}, min_region {model.cfg.min_region} ...")
    result = safety.gate(task, restorer, safety.suite_photos(), sizes=(STUDY_SIZE,))
    scores = evaluate(task, restorer.restore, photos, baselines=[], max_side=STUDY_SIZE) if photos else \
        {"settings": [], "mean": {}}
    return {"task": task, "tile": spec.tile, "overlap": spec.overlap, "min_region": model.cfg.min_region,
            "failures": result["failures"],
            "test": {s: scores["mean"][s]["drcnet"]["psnr"] for s in scores["settings"]},
            "clean_512": result["summary"][512]["clean"]["mean"]}


def study(photos: dict, checkpoints: dict, candidates=CANDIDATES, tasks=TASKS, log=print,
          min_region: int | None = None) -> list[dict]:
    rows = []
    for tile, overlap, batch in candidates:
        spec = InferenceSpec("matched", tile, overlap, batch)
        for task in tasks:
            row = study_one(task, spec, photos, checkpoints[task], log, min_region)
            row.update(cost=pixel_cost(STUDY_SIZE, STUDY_SIZE, tile, overlap), forwards=forwards(STUDY_SIZE, spec),
                       tiles=len(tiles_for(STUDY_SIZE, STUDY_SIZE, tile, overlap)))
            rows.append(row)
            log(markdown([row]).splitlines()[-1])
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| tile / overlap | min region | tiles at 512 px (forwards) | pixel cost | task | gate | clean 512 px "
             "| test set at 512 px, PSNR per setting |", "|---" * 8 + "|"]
    for r in rows:
        gate = "pass" if not r["failures"] else f"FAIL: {r['failures'][0]}"
        test = " / ".join(f"{v:.2f}" for v in r["test"].values()) or "-"
        lines.append(f"| {r['tile']} / {r['overlap']} | {r['min_region']} px | {r['tiles']} ({r['forwards']}) "
                     f"| {r['cost']:.2f}x "
                     f"| {r['task']} | {gate} | {r['clean_512']:.2f} | {test} ({', '.join(r['test'])}) |")
    return "\n".join(lines)
