"""Command line: `python -m drcnet restore ...` and `python -m drcnet info CHECKPOINT`.

Exit codes: 0 everything worked, 1 some inputs failed (the others were still written), 2 usage error or an
unusable checkpoint. Problems are reported on stderr, one line each, never as a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drcnet.core.paths import checkpoint_file, checkpoints_dir
from drcnet.core.tasks import TASKS

OK, SOME_FAILED, UNUSABLE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m drcnet", description="DRCNet image restoration")
    commands = parser.add_subparsers(dest="command", required=True)

    restore = commands.add_parser("restore", help="restore images and write <name>.png into --out")
    restore.add_argument("inputs", nargs="+", metavar="INPUT")
    which = restore.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", choices=TASKS, help="use checkpoints/<task>.safetensors")
    which.add_argument("--checkpoint", type=Path, help="a .safetensors checkpoint (or an official .pth)")
    restore.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    restore.add_argument("--tile", type=int, default=None,
                         help="tile size in pixels (default: the checkpoint's inference spec), 0 = one pass over "
                              "the whole image (the paper's statistics)")
    restore.add_argument("--overlap", type=int, default=None, help="tile overlap in pixels (with --tile)")
    restore.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    restore.add_argument("--precision", choices=("bf16", "fp32", "auto"), default="auto")
    restore.add_argument("--t", type=float, default=None, help="mask threshold t in [0, 1]")

    info = commands.add_parser("info", help="print a checkpoint's metadata")
    info.add_argument("checkpoint", type=Path)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)      # argparse exits with 2 on usage errors
    return run_restore(args) if args.command == "restore" else run_info(args)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def resolve_checkpoint(args) -> Path:
    if args.checkpoint is not None:
        return args.checkpoint
    path = checkpoint_file(checkpoints_dir(), args.task)
    if not path.is_file():
        raise FileNotFoundError(f"no trained checkpoint for task {args.task!r}: {path} does not exist "
                                f"(train one or pass --checkpoint)")
    return path


def load_restorer(args):
    """-> Restorer, or None after reporting why the checkpoint or the options are unusable."""
    from drcnet.model.checkpoint import CheckpointError
    from drcnet.serve.engine import Restorer

    from drcnet.model.inference import InferenceSpec

    try:
        spec = InferenceSpec("matched", args.tile, args.overlap or 0) if args.tile else None
        restorer = Restorer.from_checkpoint(resolve_checkpoint(args), device=args.device, precision=args.precision,
                                            spec=spec, statistics="whole" if args.tile == 0 else None)
        if args.t is not None:
            restorer.set_threshold(args.t)
        return restorer
    except (FileNotFoundError, CheckpointError, ValueError, RuntimeError) as e:
        fail(str(e))
        return None


def run_restore(args) -> int:
    from tqdm import tqdm

    from drcnet.serve.imageio import ImageError, load_image, save_image

    if args.overlap is not None and not args.tile:
        fail("--overlap needs --tile N (N > 0)")
        return UNUSABLE
    if args.tile and 2 * (args.overlap or 0) > args.tile:
        fail(f"--overlap ({args.overlap}) must be at most half of --tile ({args.tile})")
        return UNUSABLE
    restorer = load_restorer(args)
    if restorer is None:
        return UNUSABLE
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for source in args.inputs:
        try:
            loaded = load_image(source)
            with tqdm(desc=Path(source).name, unit="tile", file=sys.stderr, leave=False) as bar:
                restored = restorer.restore(loaded.rgb, progress=lambda done, total: update_bar(bar, done, total),
                                            **({"tile": 0} if args.tile == 0 else {}))
            target = save_image(args.out / f"{Path(source).stem}.png", loaded, restored)
            stats = restorer.last_stats
            print(f"{source} -> {target} ({stats['tiles']} tiles, {stats['seconds']:.1f} s, "
                  f"{stats['device']} {stats['precision']})", file=sys.stderr)
        except (ImageError, OSError) as e:
            failures += 1
            fail(str(e))
    return SOME_FAILED if failures else OK


def update_bar(bar, done: int, total: int) -> None:
    bar.total = total
    bar.n = done
    bar.refresh()


def run_info(args) -> int:
    from drcnet.model.checkpoint import CheckpointError, load_checkpoint
    from drcnet.model.network import count_parameters

    try:
        model, meta = load_checkpoint(args.checkpoint)
    except CheckpointError as e:
        fail(str(e))
        return UNUSABLE
    print(f"checkpoint: {args.checkpoint}")
    print(f"task:       {meta.get('task') or '-'}")
    print(f"preset:     {meta.get('preset') or '-'}")
    print(f"parameters: {count_parameters(model):,}")
    for key in ("config", "training", "metrics", "inference"):
        print(f"{key + ':':11} {json.dumps(meta.get(key) or {}, sort_keys=True)}")
    return OK
