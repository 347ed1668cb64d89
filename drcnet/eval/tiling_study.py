"""Which tile and overlap to serve with: the safety gate, the test set and the pixels each tiling costs.

    python scripts/tiling_study.py                     # every task, the CANDIDATES, a markdown table

For each candidate (tile, overlap) every shipped checkpoint runs with that inference spec (matched statistics):
- the safety gate (drcnet.eval.safety.gate) on the clean photos of assets/ at 256 and 512 px (what the test
  suite runs): PASS or the first failure;
- the test set at 512 px centre crops (the app's size): mean PSNR per setting;
- the pixel cost at 512 x 512 (pixels processed per image pixel) and the number of forwards of spec.batch tiles.
Times are taken by scripts/benchmark.py on an idle machine, not here (this runs beside other work).
The chosen spec is drcnet/model/inference.py's; the table is in docs/design.md ("Tile size and overlap").
"""
from __future__ import annotations

from drcnet.core.tasks import TASKS
from drcnet.model.inference import InferenceSpec
from drcnet.serve.tiling import pixel_cost, tiles_for

CANDIDATES = ((128, 32), (176, 8), (192, 32))   # the training patch (128) up to 1.5x it
STUDY_SIZE = 512


def forwards(size: int, spec: InferenceSpec) -> int:
    return -(-len(tiles_for(size, size, spec.tile, spec.overlap)) // spec.batch)


def study_one(task: str, spec: InferenceSpec, photos: dict, checkpoint, log=print) -> dict:
    """photos: the test set (clean photos, float32)."""
    from drcnet.eval import safety
    from drcnet.eval.evaluate import evaluate
    from drcnet.serve.engine import Restorer

    restorer = Restorer.from_checkpoint(checkpoint, spec=spec)
    log(f"{task}: tile {spec.tile}, overlap {spec.overlap} ...")
    result = safety.gate(task, restorer, safety.asset_photos())
    scores = evaluate(task, restorer.restore, photos, baselines=[], max_side=STUDY_SIZE)
    return {"task": task, "tile": spec.tile, "overlap": spec.overlap, "failures": result["failures"],
            "test": {s: scores["mean"][s]["drcnet"]["psnr"] for s in scores["settings"]},
            "clean_512": result["summary"][512]["clean"]["mean"]}


def study(photos: dict, checkpoints: dict, candidates=CANDIDATES, tasks=TASKS, log=print) -> list[dict]:
    rows = []
    for tile, overlap in candidates:
        spec = InferenceSpec("matched", tile, overlap)
        for task in tasks:
            row = study_one(task, spec, photos, checkpoints[task], log)
            row.update(cost=pixel_cost(STUDY_SIZE, STUDY_SIZE, tile, overlap), forwards=forwards(STUDY_SIZE, spec),
                       tiles=len(tiles_for(STUDY_SIZE, STUDY_SIZE, tile, overlap)))
            rows.append(row)
            log(markdown([row]).splitlines()[-1])
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| tile / overlap | tiles at 512 px (forwards of 9) | pixel cost | task | gate | clean 512 px "
             "| test set at 512 px, PSNR per setting |", "|---" * 7 + "|"]
    for r in rows:
        gate = "pass" if not r["failures"] else f"FAIL: {r['failures'][0]}"
        test = " / ".join(f"{v:.2f}" for v in r["test"].values())
        lines.append(f"| {r['tile']} / {r['overlap']} | {r['tiles']} ({r['forwards']}) | {r['cost']:.2f}x "
                     f"| {r['task']} | {gate} | {r['clean_512']:.2f} | {test} ({', '.join(r['test'])}) |")
    return "\n".join(lines)
