#!/usr/bin/env python
"""The GPU burst (docs/gpu.md; the logic is drcnet/ops/burst.py).

    python scripts/gpu_burst.py --out "$OUT"

The deadline's clock starts here, on the first line, before torch is imported: on a fresh machine that import
and CUDA's start-up take seconds of the lease.
"""
import time

START = time.monotonic()

from drcnet.ops.burst import main  # noqa: E402  (after the clock)

if __name__ == "__main__":
    main(start=START)
