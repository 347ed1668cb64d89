"""Where the project's files live: the one place that knows (environment overrides included).

The package sits inside the repository (`<repo>/drcnet/`), so the repository's folders are found from here:
`checkpoints/` (the shipped weights, the VGG19 slice, the model cards), `assets/` (the app's examples) and
`data/` (the fetched photos, not in git).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "checkpoints"          # what the repository ships (task weights, VGG19 slice, cards)
ASSETS = REPO / "assets"


def checkpoints_dir() -> Path:
    """The task checkpoints the app and the CLI serve: $DRCNET_CHECKPOINTS, else the shipped ones."""
    return Path(os.environ.get("DRCNET_CHECKPOINTS") or SHIPPED)


def data_dir(root=None) -> Path:
    """The fetched photos: root, else $DRCNET_DATA, else <repo>/data."""
    return Path(root or os.environ.get("DRCNET_DATA") or REPO / "data")
