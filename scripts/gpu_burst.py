#!/usr/bin/env python
"""The GPU burst (docs/gpu.md; the logic is drcnet/burst.py).

    python scripts/gpu_burst.py --out "$OUT"

The deadline's clock starts here, on the first line, before torch is imported: on a fresh machine that import
and CUDA's start-up take seconds of the lease.
"""
import time

START = time.monotonic()

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drcnet.burst import main  # noqa: E402

if __name__ == "__main__":
    main(start=START)
