"""File helpers: atomic replacement, JSON lines logs, JSON-safe values. The one way this project writes files."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, write) -> None:
    """write(tmp) into a temporary file beside `path`, fsync it, then os.replace: a reader (or a crash, or a
    kill -9) sees the old file or the new one, never half of one. The one way this project replaces files."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save, the old file or the new one, never half (a kill -9 at any moment)."""
    import torch

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def trim_jsonl(path: Path, upto: int) -> None:
    """On resume, drop log lines of iterations after the saved state (they will be run again)."""
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            if json.loads(line).get("iter", 0) <= upto:
                keep.append(line)
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(line + "\n" for line in keep)))


def read_jsonl(path: Path) -> list[dict]:
    """The records of a log.jsonl; a line cut short by a killed writer (the last one) is skipped, not fatal."""
    path = Path(path)
    records = []
    if not path.is_file():
        return records
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def jsonable(x):
    """x with every non-finite float written as a string (JSON has no inf/nan; identical images have PSNR inf)."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [jsonable(v) for v in x]
    return x
