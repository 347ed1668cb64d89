"""Facts about an input file that the demo keys its caches by: when it last changed, whether two files hold the
same bytes, and a digest of its content (a checkpoint's, for the example results computed with it)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def mtime(path) -> float:
    """The file's modification time; 0.0 for no path or one that cannot be read."""
    try:
        return os.stat(path).st_mtime if path else 0.0
    except (OSError, TypeError, ValueError):
        return 0.0


def same_bytes(a, b) -> bool:
    try:
        return Path(a).stat().st_size == Path(b).stat().st_size and Path(a).read_bytes() == Path(b).read_bytes()
    except OSError:
        return False


def content_digest(path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes, hex (a 19 MB checkpoint: about 50 ms)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
