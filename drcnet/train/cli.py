"""`python -m drcnet.train` (and `torchrun -m drcnet.train`): parse the command line, train, print the summary."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from drcnet.train.config import parse_config
from drcnet.train.run import train

MAIN_SCRIPT = Path(__file__).resolve().with_name("__main__.py")     # python -m drcnet.train


def main(argv=None) -> dict:
    cfg = parse_config(argv)
    if cfg.command is None:                  # the exact command line (under torchrun: the script and its args)
        args = sys.argv[1:] if argv is None else list(argv)
        script = sys.argv[0] if argv is None else ""
        if not script or Path(script).resolve() in (Path(__file__).resolve(), MAIN_SCRIPT):
            script = "python -m drcnet.train"
        cfg = dataclasses.replace(cfg, command=" ".join([script, *args]))
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
    return result


if __name__ == "__main__":
    main()
