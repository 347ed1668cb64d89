"""The examples' index, assets/examples.json (written by scripts/make_assets.py): its one reader. The app fills
its gallery from it (drcnet/demo/examples.py); the safety gate and the compiled graph's check use the examples'
photos (drcnet/eval/safety.py)."""
from __future__ import annotations

import json
from pathlib import Path

from drcnet.core.paths import ASSETS


def example_entries(task: str | None = None, folder: Path | None = None) -> list[dict]:
    """The entries of <folder>/examples.json (default: the repository's assets/), of one task or all; [] when
    the index is missing."""
    index = (ASSETS if folder is None else Path(folder)) / "examples.json"
    if not index.is_file():
        return []
    return [e for e in json.loads(index.read_text()) if not task or e["task"] == task]
