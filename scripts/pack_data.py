#!/usr/bin/env python
"""Pack the training and validation photos small enough to travel with the repository to a GPU machine.

    python scripts/pack_data.py                  # data/{train,val} -> datapack/{train,val}, longer side 720 px
    python scripts/pack_data.py --check          # is datapack/ complete? (before a GPU lease; exit 2 if not)

The logic and its reasons are in drcnet/data/datapack.py (the same command: `python -m drcnet.data.datapack`).
datapack/ is git-ignored; a device call names it in `carry` (docs/gpu.md).
"""
from drcnet.data.datapack import main

if __name__ == "__main__":
    main()
