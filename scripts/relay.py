#!/usr/bin/env python
"""The quality relay (the logic and its reasons: drcnet/ops/relay.py).

    nice -n 10 python scripts/relay.py --minutes 120 --task auto &      # or --task denoise|derain|deblur
    python scripts/relay.py --legs-only runs/relay-deblur-1 --task deblur --leg-minutes 95
"""

from drcnet.ops.relay import main
if __name__ == "__main__":
    main()
