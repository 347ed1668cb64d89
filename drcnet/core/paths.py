"""Where the project's files live and what they are called: the one place that knows (environment overrides
included).

The package sits inside the repository (`<repo>/drcnet/`), so the repository's folders are found from here:
`checkpoints/` (the shipped weights, the VGG19 slice, the model cards), `assets/` (the app's examples), `data/`
(the fetched photos, not in git) and `.cache/inductor` (compiled graphs, gitignored).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]      # drcnet/
REPO = PACKAGE.parent
SHIPPED = REPO / "checkpoints"          # what the repository ships (task weights, VGG19 slice, cards)
ASSETS = REPO / "assets"
INDUCTOR_CACHE = REPO / ".cache" / "inductor"      # gitignored (/.cache/)

# The checkpoint naming rule: <name><suffix> in a folder, where name is a task ("denoise"), an ablation
# ("denoise-DFR-l1") or a run's "best" / "last", and the kind picks the file beside the weights.
SUFFIXES = {"weights": ".safetensors", "test": ".test.json", "val": ".val.json", "card": ".md",
            "notes": ".notes.md", "legs": ".legs.json", "previous": ".previous.json"}


def checkpoint_file(folder, name: str, kind: str = "weights") -> Path:
    """The file of kind `kind` for checkpoint `name` in `folder`: checkpoint_file(SHIPPED, "denoise") is
    checkpoints/denoise.safetensors, checkpoint_file(run, "best") is run/best.safetensors, kind "test" its
    evaluation (denoise.test.json), "card" its model card (denoise.md)."""
    if kind not in SUFFIXES:
        raise ValueError(f"unknown checkpoint file kind {kind!r}; choose one of {tuple(SUFFIXES)}")
    return Path(folder) / f"{name}{SUFFIXES[kind]}"


def checkpoints_dir() -> Path:
    """The task checkpoints the app and the CLI serve: $DRCNET_CHECKPOINTS, else the shipped ones."""
    return Path(os.environ.get("DRCNET_CHECKPOINTS") or SHIPPED)


def data_dir(root=None) -> Path:
    """The fetched photos: root, else $DRCNET_DATA, else <repo>/data."""
    return Path(root or os.environ.get("DRCNET_DATA") or REPO / "data")
