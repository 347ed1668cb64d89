#!/usr/bin/env python
"""The quality relay (the logic and its reasons: drcnet/relay.py).

    nice -n 10 python scripts/relay.py --minutes 120 [--task auto|denoise|derain|deblur] &
    python scripts/relay.py --legs-only runs/relay-deblur-1 --task deblur --leg-minutes 95
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drcnet.relay import main  # noqa: E402

if __name__ == "__main__":
    main()
