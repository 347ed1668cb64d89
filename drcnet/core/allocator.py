"""How the process allocates memory: glibc keeps freed blocks for the next tensor (no torch import here, so the app
can set it before its server threads start)."""
from __future__ import annotations

import ctypes
import functools
import os
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
KEEP_FREED = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2 ** 30, M_ARENA_MAX: 1}


@functools.cache             # once per process: the setting is process-wide
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for the next allocation instead of handing it back to the kernel (Linux with
    glibc; elsewhere, or with DRCNET_ALLOCATOR=system, nothing). Returns whether the setting is on.

    Why: an eager forward makes hundreds of temporaries of tens of MB (9 tiles x 32 channels x 176 x 176 in float32
    is 36 MB). glibc serves every block over its mmap threshold (at most 32 MB) with a fresh mapping and unmaps it
    when freed, and threads other than the main one get heaps of at most 64 MB that come and go, so each
    temporary arrives as new pages that the kernel faults in and zeroes. On the benchmark machine that was a
    quarter of an eager forward (SimAM's weights 214 -> 71 ms, the region norm 204 -> 104 ms; docs/benchmark.md).
    Here: no mmap for large blocks, freed memory kept up to 1 GiB before trimming, one arena for all threads. The
    process keeps its peak memory instead of returning it (docs/benchmark.md: 10 % above glibc's peak, no growth
    past it). Process-wide, so every CPU Restorer turns it on, and app.py before its server threads start (a
    thread keeps the arena it first allocated from)."""
    if not sys.platform.startswith("linux") or os.environ.get("DRCNET_ALLOCATOR", "") == "system":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt          # glibc's; musl has none (AttributeError)
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in KEEP_FREED.items())
