"""Command line: `drcnet restore ...`, `drcnet info [CHECKPOINT]` and `drcnet export-hub TASK FOLDER` (also as
`python -m drcnet ...`).

Weights are named the way drcnet.core.paths.find_weights takes them: a task (its shipped checkpoint, found in
$DRCNET_CHECKPOINTS, the clone's checkpoints/ or the installed package), a file, a model folder, or a Hub
repository id (owner/name, downloaded into huggingface_hub's cache: the only thing that downloads).

Exit codes: 0 everything worked, 1 some inputs failed (the others were still written), 2 usage error or an
unusable checkpoint. Problems are reported on stderr, one line each, never as a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drcnet.core.paths import checkpoint_folders, find_weights
from drcnet.core.tasks import TASKS

OK, SOME_FAILED, UNUSABLE = 0, 1, 2
SOURCE_HELP = "a task, a .safetensors file (or an official .pth), a model folder, or a Hub repository id owner/name"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drcnet", description="DRCNet image restoration")
    commands = parser.add_subparsers(dest="command", required=True)

    restore = commands.add_parser("restore", help="restore images and write <name>.png into --out")
    restore.add_argument("inputs", nargs="+", metavar="INPUT")
    which = restore.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", choices=TASKS, help="the task's shipped checkpoint (see `drcnet info`)")
    which.add_argument("--checkpoint", help=SOURCE_HELP)
    restore.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    restore.add_argument("--tile", type=int, default=None,
                         help="tile size in pixels (default: the checkpoint's inference spec), 0 = one pass over "
                              "the whole image (the paper's statistics)")
    restore.add_argument("--overlap", type=int, default=None, help="tile overlap in pixels (with --tile)")
    restore.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    restore.add_argument("--precision", choices=("bf16", "fp32", "auto"), default="auto")
    restore.add_argument("--t", type=float, default=None, help="mask threshold t in [0, 1]")

    info = commands.add_parser("info", help="a checkpoint's metadata; without one, the checkpoints available")
    info.add_argument("checkpoint", nargs="?", help=SOURCE_HELP)

    export = commands.add_parser("export-hub", help="write a folder ready to upload to the Hugging Face Hub: "
                                                    "model.safetensors, config.json, README.md (the card)")
    export.add_argument("checkpoint", metavar="TASK", help=SOURCE_HELP)
    export.add_argument("folder", type=Path, metavar="FOLDER")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)      # argparse exits with 2 on usage errors
    commands = {"restore": run_restore, "info": run_info, "export-hub": run_export}
    return commands[args.command](args)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def load_restorer(args):
    """-> Restorer, or None after reporting why the checkpoint or the options are unusable."""
    from drcnet.model.checkpoint import CheckpointError
    from drcnet.serve.engine import Restorer

    from drcnet.model.inference import InferenceSpec

    try:
        weights = find_weights(args.task or args.checkpoint)
        print(f"checkpoint: {weights}", file=sys.stderr)
        spec = InferenceSpec("matched", args.tile, args.overlap or 0) if args.tile else None
        restorer = Restorer.from_checkpoint(weights, device=args.device, precision=args.precision,
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

    if args.checkpoint is None:
        return describe_available()
    try:
        weights = find_weights(args.checkpoint)
        model, meta = load_checkpoint(weights)
    except (FileNotFoundError, CheckpointError) as e:
        fail(str(e))
        return UNUSABLE
    print(f"checkpoint: {weights}")
    print(f"task:       {meta.get('task') or '-'}")
    print(f"preset:     {meta.get('preset') or '-'}")
    print(f"parameters: {count_parameters(model):,}")
    for key in ("config", "training", "metrics", "inference"):
        print(f"{key + ':':11} {json.dumps(meta.get(key) or {}, sort_keys=True)}")
    return OK


def describe_available() -> int:
    """Per task: the checkpoint `--task` would use, its preset and test PSNR (read from the header only), or
    that none was found; then the folders searched. Exit 0 when at least one task has a checkpoint."""
    from drcnet.model.checkpoint import CheckpointError, read_metadata

    found = 0
    print("Task checkpoints (drcnet restore --task TASK; drcnet info TASK for the whole metadata):")
    for task in TASKS:
        try:
            weights = find_weights(task)
            meta = read_metadata(weights)
        except (FileNotFoundError, CheckpointError) as e:
            print(f"  {task:8} none: {e}")
            continue
        found += 1
        print(f"  {task:8} {weights}")
        print(f"  {'':8} preset {meta.get('preset') or '-'}, "
              f"{(meta.get('training') or {}).get('iterations', '?')} iterations; {measured_psnr(meta)}")
    print("Searched in this order: " + "; ".join(f"{label} ({folder})" for label, folder in checkpoint_folders()))
    print("Other weights: --checkpoint FILE | FOLDER | owner/name (a Hub repository, downloaded when named)")
    return OK if found else UNUSABLE


def measured_psnr(meta: dict) -> str:
    """The mean test PSNR per setting recorded in a checkpoint's metrics ("no test results" without them)."""
    test = (meta.get("metrics") or {}).get("test") or {}
    scores = [f"{setting} {row['drcnet']['psnr']:.2f}" for setting, row in test.items()
              if isinstance(row, dict) and "psnr" in row.get("drcnet", {})]
    return "test PSNR " + ", ".join(scores) + " dB" if scores else "no test results recorded"


def run_export(args) -> int:
    from drcnet.model.checkpoint import CheckpointError
    from drcnet.model.hub import export_for_hub

    try:
        folder = export_for_hub(args.checkpoint, args.folder)
    except (FileNotFoundError, CheckpointError) as e:
        fail(str(e))
        return UNUSABLE
    for path in sorted(folder.iterdir()):
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"upload with: hf upload OWNER/NAME {folder}   (or DRCNet.from_pretrained(...).push_to_hub)")
    return OK
