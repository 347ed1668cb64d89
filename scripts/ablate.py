#!/usr/bin/env python
"""The paper's ablations, replicated small: Table 4 (the DFR block's branches) and Table 5 (Intra-CR against L1
and Extra-CR), as one resumable command (docs/ablation.md; the logic is drcnet/ops/ablation.py).

    python scripts/ablate.py                                    # the study on the CPU: tiny preset, 8 min a run
    python scripts/ablate.py --repeat-seed 1                    # and the two closest contrasts with a 2nd seed
    python scripts/ablate.py --dry-run                          # print the runs and their commands
    python scripts/ablate.py --device cuda --preset lite --batch 32 --patch 256 --minutes 2 \
        --data datapack/train --val-data datapack/val --no-eval  # a GPU burst (evaluate later on the CPU)
    python scripts/ablate.py --ship DFR-l1 base                 # -> checkpoints/denoise-DFR-l1.safetensors, ...
"""
from drcnet.ops.ablation import main

if __name__ == "__main__":
    main()
