#!/usr/bin/env python
"""The app's speed as ratios to the engine's eager whole-image pass (the logic and the targets:
drcnet/eval/app_timing.py). Run it on an idle machine (pause the relay: kill -STOP <pid>).

    python scripts/measure_app.py [--repeats 5] [--eager] [--cold]
"""
from drcnet.eval.app_timing import main

if __name__ == "__main__":
    main()
