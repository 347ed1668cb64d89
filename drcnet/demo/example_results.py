"""Every example's Restore result, ready before anyone clicks: computed at start-up in the background (one task at a
time, Registry.warm_up's after_each) and stored on disk, so a click shows the before/after at once, without running
the model, and a restart reuses what an earlier start computed.

Each result is stored under a key made of its checkpoint's SHA-256, the example's files (their content) and
settings, and the tile size the app restores with: a new checkpoint, a changed example or another tile size gets a
new result, never a stale one. Results are written to a temporary folder and renamed into place, so a reader sees a
whole result or none.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from drcnet.core.paths import REPO
from drcnet.demo.examples import examples
from drcnet.demo.files import content_digest
from drcnet.demo.restore_tab import restore
from drcnet.demo.settings import InputSettings

log = logging.getLogger("drcnet.app")
NOTE = "the example's result, computed at start-up"


@dataclass
class StoredResult:
    """One example's Restore outputs on disk, as the Restore tab shows them."""
    before: Path
    after: Path
    stage1: Path
    download: Path                   # the result file, as the input was (PNG)
    facts: str


def default_folder() -> Path:
    """$DRCNET_EXAMPLE_CACHE, else .cache/examples in the repository (beside the compiled graphs' cache)."""
    return Path(os.environ.get("DRCNET_EXAMPLE_CACHE") or REPO / ".cache" / "examples")


class ExampleResults:
    """The stored results of the examples (assets/examples.json), by the example's index in examples()."""

    def __init__(self, folder=None):
        self.folder = Path(folder) if folder is not None else default_folder()

    def key(self, registry, row: list) -> str:
        """What the result depends on: the checkpoint's digest (the file's: its inference spec, the tiles, is in
        its header), the example's files and settings."""
        image, task, *settings = row
        values = InputSettings.from_row(settings)
        parts = [task, registry.checkpoint_digest(task), content_digest(image),
                 content_digest(values.reference) if values.reference else None,
                 [str(v) if k == "reference" else v for k, v in zip(InputSettings.names(), settings)]]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]

    def get(self, registry, index: int) -> StoredResult | None:
        """The stored result of example `index` for the checkpoint now in place; None until it is computed (or
        when its checkpoint is missing)."""
        rows = examples()
        if not 0 <= index < len(rows):
            return None
        try:
            folder = self.folder / self.key(registry, rows[index])
            facts = json.loads((folder / "facts.json").read_text())
        except (OSError, ValueError):
            return None
        return StoredResult(folder / "before.png", folder / "after.png", folder / "stage1.png",
                            folder / facts["download"], facts["facts"])

    def fill(self, registry, task: str) -> int:
        """Compute and store every example of `task` that has no stored result yet; returns how many it computed.
        One failing example is logged and skipped (a click on it then runs the model)."""
        done = 0
        for index, row in enumerate(examples()):
            if row[1] != task or self.get(registry, index) is not None:
                continue
            registry.activity.wait_until_idle()          # a visitor's request first
            try:
                self.store(registry, row)
                done += 1
            except Exception:
                log.exception("computing the result of example %d (%s) failed", index, row[0])
        return done

    def store(self, registry, row: list) -> Path:
        """Restore one example (with its stage-1 output) and write its outputs under its key."""
        image, task, *settings = row
        # between its forwards the restore waits while a visitor's request runs (the app passes a background_copy)
        result = restore(registry, image, task, InputSettings.from_row(settings), stage1=True,
                         progress=registry.activity.yield_to_requests)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / self.key(registry, row)
        staging = Path(tempfile.mkdtemp(dir=self.folder, prefix=".staging-"))
        try:
            for name, picture in (("before", result.before), ("after", result.after), ("stage1", result.stage1)):
                picture.save(staging / f"{name}.png", compress_level=1)
            download = f"{Path(image).stem}_restored.png"
            shutil.copy(result.download, staging / download)
            facts = {"facts": f"{result.facts} | {NOTE}", "download": download}
            (staging / "facts.json").write_text(json.dumps(facts))
            os.replace(staging, target)
        except OSError:
            if not target.is_dir():             # another process may have stored the same result first
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target
