"""Where the project's files live and what they are called: the one place that knows (environment overrides
included), and the one resolver that turns what a user names into a weights file (`find_weights`).

The package sits inside the repository (`<repo>/drcnet/`) when run from a clone, so the repository's folders are
found from here: `checkpoints/` (the shipped weights, the VGG19 slice, the model cards), `assets/` (the app's
examples), `data/` (the fetched photos, not in git) and `.cache/inductor` (compiled graphs, gitignored). A wheel
has no repository around it: it carries the shipped weights, cards and VGG19 slice in `drcnet/weights/`
(pyproject.toml maps `checkpoints/` there), so `pip install` restores from anywhere without a download.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from drcnet.core.tasks import TASKS

PACKAGE = Path(__file__).resolve().parents[1]      # drcnet/
REPO = PACKAGE.parent
SHIPPED = REPO / "checkpoints"          # what the repository ships (task weights, VGG19 slice, cards)
WHEEL_WEIGHTS = PACKAGE / "weights"     # the same files inside an installed wheel (pyproject: package data)
ASSETS = REPO / "assets"
INDUCTOR_CACHE = REPO / ".cache" / "inductor"      # gitignored (/.cache/)

# The checkpoint naming rule: <name><suffix> in a folder, where name is a task ("denoise"), an ablation
# ("denoise-DFR-l1") or a run's "best" / "last", and the kind picks the file beside the weights.
SUFFIXES = {"weights": ".safetensors", "test": ".test.json", "val": ".val.json", "card": ".md",
            "notes": ".notes.md", "legs": ".legs.json", "previous": ".previous.json"}

# A model folder in the Hugging Face Hub's layout (save_pretrained, export-hub, a downloaded Hub repository).
HUB_WEIGHTS, HUB_CONFIG, HUB_CARD = "model.safetensors", "config.json", "README.md"
# owner/name as the Hub spells repository ids; a name ending like a weights file is a mistyped path instead.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")


class WeightsNotFound(FileNotFoundError):
    """No weights where the user pointed; the message names every place that was looked at."""


def checkpoint_file(folder, name: str, kind: str = "weights") -> Path:
    """The file of kind `kind` for checkpoint `name` in `folder`: checkpoint_file(SHIPPED, "denoise") is
    checkpoints/denoise.safetensors, checkpoint_file(run, "best") is run/best.safetensors, kind "test" its
    evaluation (denoise.test.json), "card" its model card (denoise.md)."""
    if kind not in SUFFIXES:
        raise ValueError(f"unknown checkpoint file kind {kind!r}; choose one of {tuple(SUFFIXES)}")
    return Path(folder) / f"{name}{SUFFIXES[kind]}"


def in_clone() -> bool:
    """Run from the repository (a clone, or an editable install), not from an installed wheel."""
    return (REPO / "pyproject.toml").is_file()


def graph_cache() -> Path:
    """Where the engine keeps its compiled tile graphs (drcnet/serve/compiled.py): $DRCNET_CACHE/graphs, else
    the clone's .cache/graphs (gitignored), else ~/.cache/drcnet/graphs for an installed wheel."""
    if os.environ.get("DRCNET_CACHE"):
        root = Path(os.environ["DRCNET_CACHE"])
    else:
        root = REPO / ".cache" if in_clone() else Path.home() / ".cache" / "drcnet"
    return root / "graphs"


def checkpoint_folders() -> list[tuple[str, Path]]:
    """The folders that may hold the task checkpoints, in the order they are searched, each with the words a
    user knows it by: $DRCNET_CHECKPOINTS, the clone's checkpoints/, the installed package's copy."""
    folders = []
    if os.environ.get("DRCNET_CHECKPOINTS"):
        folders.append(("$DRCNET_CHECKPOINTS", Path(os.environ["DRCNET_CHECKPOINTS"])))
    if in_clone():
        folders.append(("the repository's checkpoints/", SHIPPED))
    folders.append(("the installed package", WHEEL_WEIGHTS))
    return folders


def checkpoints_dir() -> Path:
    """The folder of task checkpoints the app serves: the first of checkpoint_folders() ($DRCNET_CHECKPOINTS is
    taken as given, so a wrong one is reported as missing checkpoints rather than skipped)."""
    return checkpoint_folders()[0][1]


def shipped_file(name: str) -> Path:
    """A file the project ships beside its checkpoints (the VGG19 slice, its licence): the clone's copy, else the
    installed wheel's."""
    return (SHIPPED if in_clone() else WHEEL_WEIGHTS) / name


def find_weights(source, *, revision: str | None = None, cache_dir=None, token: str | None = None,
                 local_files_only: bool = False) -> Path:
    """The weights file a user means by `source`, taken in this order:

    1. a path that exists: a weights file (.safetensors, or the authors' .pth) or a model folder (its
       model.safetensors, as save_pretrained and export-hub write it);
    2. a task name ("denoise"): <task>.safetensors in the first of checkpoint_folders() that has it;
    3. a Hub repository id ("owner/name"): downloaded by huggingface_hub into its usual cache (or cache_dir).
       Nothing else here touches the network.

    Raises WeightsNotFound naming every place it looked."""
    path = Path(source)
    if path.exists():
        return weights_in_folder(path) if path.is_dir() else path
    if str(source) in TASKS:
        return find_task_checkpoint(str(source))
    if HUB_ID.fullmatch(str(source)) and not str(source).endswith(WEIGHT_SUFFIXES):
        folder = download_from_hub(str(source), revision=revision, cache_dir=cache_dir, token=token,
                                   local_files_only=local_files_only)
        return weights_in_folder(folder, label=f"the Hub repository {source}")
    raise WeightsNotFound(f"{source}: no such checkpoint file or model folder; not a task ({', '.join(TASKS)}) "
                          f"and not a Hub repository id (owner/name) either")


def find_task_checkpoint(task: str) -> Path:
    tried = []
    for label, folder in checkpoint_folders():
        path = checkpoint_file(folder, task)
        if path.is_file():
            return path
        tried.append(f"{label} ({path})")
    raise WeightsNotFound(f"no trained checkpoint for task {task!r}; looked in " + "; ".join(tried) +
                          ". Train one, or pass a checkpoint file, a model folder or a Hub repository id "
                          "(owner/name)")


def weights_in_folder(folder: Path, label: str | None = None) -> Path:
    path = Path(folder) / HUB_WEIGHTS
    if not path.is_file():
        raise WeightsNotFound(f"{label or folder}: a folder without {HUB_WEIGHTS} (the layout that "
                              f"save_pretrained and `drcnet export-hub` write); looked for {path}")
    return path


def download_from_hub(repo_id: str, **options) -> Path:
    """The repository's weights, config and card, through huggingface_hub's cache: downloaded once, offline
    afterwards (HF_HUB_OFFLINE=1 or local_files_only=True use the cached copy and never reach the network)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=[HUB_WEIGHTS, HUB_CONFIG, HUB_CARD], **options))
    except (OSError, ValueError) as e:   # huggingface_hub's errors: no such repository, offline, no network
        raise WeightsNotFound(f"{repo_id}: not a file or folder here, and the Hub repository could not be "
                              f"fetched ({type(e).__name__}: {e})") from None


def data_dir(root=None) -> Path:
    """The fetched photos: root, else $DRCNET_DATA, else <repo>/data."""
    return Path(root or os.environ.get("DRCNET_DATA") or REPO / "data")
