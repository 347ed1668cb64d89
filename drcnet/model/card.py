"""Model cards as the Hub reads them: YAML front matter (licence, library, tags, pipeline, and the measured test
results as a `model-index`) above the Markdown a person reads.

The model-index is made from a checkpoint's test evaluation (`<task>.test.json`, written by drcnet.ops.release),
never typed: the release writes it into `checkpoints/<task>.md` and `drcnet export-hub` into the exported
README.md, from the same JSON. The YAML itself is written by huggingface_hub's `ModelCardData`, so the Hub's own
parser reads back what was meant.
"""
from __future__ import annotations

import json
from pathlib import Path

from drcnet.core.paths import HUB_CARD, HUB_WEIGHTS, checkpoint_file

LICENSE = "mit"                        # the project's licence; the weights were trained by the project
LIBRARY = "drcnet-explorer"            # the pip package that loads these weights (DRCNet.from_pretrained)
PIPELINE = "image-to-image"
TASK_TAGS = {"denoise": "image-denoising", "derain": "image-deraining", "deblur": "image-deblurring"}
TASK_NAMES = {"denoise": "Image denoising", "derain": "Image deraining", "deblur": "Image deblurring"}
TEST_SET = "drcnet-test-photos"        # 10 photos (sporco + scikit-image), not a Hub dataset: no `datasets:` key
FENCE = "---"


def card_data(task: str, test: dict | None = None):
    """huggingface_hub.ModelCardData for a task's model; test: its test evaluation (the `<task>.test.json`
    dict), whose mean DRCNet PSNR/SSIM per setting becomes the model-index (self-reported, not verified)."""
    from huggingface_hub import ModelCardData

    tags = ["image-restoration", *([TASK_TAGS[task]] if task in TASK_TAGS else []), "drcnet", "pytorch"]
    results = eval_results(task, test) if test else []
    return ModelCardData(license=LICENSE, library_name=LIBRARY, pipeline_tag=PIPELINE, tags=tags,
                         model_name=f"drcnet-{task}" if results else None, eval_results=results or None)


def eval_results(task: str, test: dict) -> list:
    """One EvalResult per (setting, metric) of the test evaluation's mean DRCNet row."""
    from huggingface_hub import EvalResult

    channel = "Y" if test.get("y_channel") else "RGB"
    crops = f", centre crops of at most {test['max_side']} px" if test.get("max_side") else ""
    results = []
    for setting in test.get("settings") or list(test["mean"]):
        scores = test["mean"][setting]["drcnet"]
        for metric, digits in (("psnr", 2), ("ssim", 4)):
            if metric in scores:
                results.append(EvalResult(
                    task_type=PIPELINE, task_name=TASK_NAMES.get(task, task), dataset_type=TEST_SET,
                    dataset_name=f"DRCNet test photos ({setting}{crops})", dataset_config=setting,
                    dataset_split="test", metric_type=metric, metric_value=round(float(scores[metric]), digits),
                    metric_name=f"{metric.upper()} ({channel})", verified=False))
    return results


def front_matter(task: str, test: dict | None = None) -> str:
    return f"{FENCE}\n{card_data(task, test).to_yaml()}\n{FENCE}\n"


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(the YAML between the opening fences or None, the Markdown body)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != FENCE:
        return None, text
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == FENCE:
            return "".join(lines[1:i]), "".join(lines[i + 1:]).lstrip("\n")
    return None, text


def with_front_matter(body: str, task: str, test: dict | None = None) -> str:
    """The card `body` (its old front matter dropped) under front matter made from `test`."""
    return front_matter(task, test) + "\n" + split_front_matter(body)[1]


def minimal_card(meta: dict) -> str:
    """A card for weights that came without one (a model saved from Python): metadata and how to load it."""
    task = meta.get("task") or "restoration"
    training = meta.get("training") or {}
    lines = [f"# DRCNet {task} model", "",
             "DRCNet (Li et al., *Dynamic Image Restoration Contrastive Network*, ECCV 2022), as implemented by "
             "DRCNet Explorer. The weights (`model.safetensors`) carry their config and training summary in "
             "their metadata; `config.json` repeats the config.", "",
             "```python", "from drcnet import DRCNet", 'model = DRCNet.from_pretrained("OWNER/NAME")', "```", ""]
    if meta.get("preset") or training.get("iterations"):
        lines += [f"Preset `{meta.get('preset') or '?'}`, {training.get('iterations', '?')} training iterations.",
                  ""]
    return front_matter(task) + "\n" + "\n".join(lines)


def card_for_weights(weights, meta: dict) -> str:
    """The card that goes with a weights file: the one beside it (`<name>.md`, or README.md in a model folder)
    under front matter made afresh from the test evaluation beside it (`<name>.test.json`); a card without
    such an evaluation is kept as written; weights without a card get minimal_card."""
    weights = Path(weights)
    card = weights.parent / HUB_CARD if weights.name == HUB_WEIGHTS else \
        checkpoint_file(weights.parent, weights.stem, "card")
    evaluation = checkpoint_file(weights.parent, weights.stem, "test")
    test = json.loads(evaluation.read_text()) if evaluation.is_file() else None
    body = card.read_text() if card.is_file() else minimal_card(meta)
    return with_front_matter(body, meta.get("task") or weights.stem, test) if test else body
