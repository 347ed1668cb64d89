"""What a visitor reads: the user's errors (DemoError), the task check, messages without server paths, and the
checkpoint status with each model's measured gain."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from drcnet.core.paths import REPO, checkpoint_file, checkpoints_dir
from drcnet.core.tasks import TASKS
from drcnet.model.checkpoint import CheckpointError
from drcnet.serve.imageio import ImageError


class DemoError(ValueError):
    """A problem the user can fix; the message is shown as is."""


class NoTaskSelected(DemoError):
    """No task is chosen (the selection is empty after a photo that looks clean): a question for the visitor,
    shown as a warning that asks which task to run, not as an error."""


NO_TASK = "No task selected: choose which task to run on this photo (denoise, derain or deblur)."
OUT_OF_MEMORY = "Out of {where} for this image: try a smaller one."


def check_task(task: str | None) -> str:
    if task in (None, ""):                  # the task selection is empty after a photo that looks clean
        raise NoTaskSelected(NO_TASK)
    if task not in TASKS:
        raise DemoError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return task


def user_message(error: BaseException, folder: Path | None = None) -> str | None:
    """The text a user reads for an error they can act on (a bad file, a missing checkpoint, too big an image);
    None for anything else (a bug: app.py logs it). The one place these messages are made."""
    if isinstance(error, (DemoError, ImageError, CheckpointError)):
        return hide_paths(str(error), folder)
    if isinstance(error, MemoryError):
        return OUT_OF_MEMORY.format(where="memory")
    if is_gpu_out_of_memory(error):
        return OUT_OF_MEMORY.format(where="GPU memory")
    return None


def is_gpu_out_of_memory(error: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA, or another accelerator, ran out of memory). Where torch was never imported
    no error can be one, so this module stays free of torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(error, torch.OutOfMemoryError)


def hide_paths(text: str, folder: Path | None = None) -> str:
    """Replace the checkpoint folder and the repository's own path in a message by nothing (file names stay)."""
    folder = Path(folder) if folder is not None else checkpoints_dir()
    for name in sorted({str(folder.resolve()), str(folder), str(REPO)}, key=len, reverse=True):
        text = text.replace(name + os.sep, "").replace(name, "the checkpoint folder")
    return text


def setting_label(task: str, setting: str) -> str:
    """An evaluation setting as a visitor reads it: sigma25 -> sigma 25, kernel13_seed101 -> 13 px, heavy -> heavy."""
    if task == "denoise" and setting.startswith("sigma"):
        return "sigma " + setting[5:]
    if task == "deblur" and setting.startswith("kernel"):
        return setting[6:].split("_")[0] + " px"
    return setting


def test_gain(registry, task: str) -> str:
    """The measured test-set gain of a task's checkpoint over its input, from `<task>.test.json` beside it
    (written by scripts/ship_checkpoint.py, so a shipped checkpoint updates the page): mean PSNR of `drcnet`
    minus `input` per evaluation setting, and whether it meets its recipe's targets. "" when there is no file."""
    path = checkpoint_file(registry.folder, task, "test")
    try:
        results = json.loads(path.read_text())
        gains = [(setting, row["drcnet"]["psnr"] - row["input"]["psnr"]) for setting, row in results["mean"].items()]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if not gains:
        return ""
    text = ", ".join(f"{g:+.1f} dB ({setting_label(task, s)})" for s, g in gains) + " on the test set"
    try:
        from drcnet.train.recipe import load_recipe
        gap = load_recipe(task).worst_gap(results)
    except (OSError, ValueError, KeyError):
        return text
    return text + (" — meets its targets" if gap >= 0 else f" — an early checkpoint ({-gap:.1f} dB short of its "
                                                             "targets)")


def status_markdown(registry) -> str:
    lines = []
    for task, info in registry.status().items():
        if info["present"]:
            extra = ", ".join(x for x in (info["preset"] and f"preset {info['preset']}", info["note"]) if x)
            gain = test_gain(registry, task)
            lines.append(f"- **{task}**: ready ({info['file']}{', ' + extra if extra else ''})"
                         f"{'; ' + gain if gain else ''}")
        else:
            lines.append(f"- **{task}**: no checkpoint ({info['note'] or 'missing ' + info['file']}); "
                         f"this task is unavailable until it is trained")
    return ("Checkpoints: (gain = the restored photos' mean PSNR minus the degraded inputs', on the test "
            "photos)\n" + "\n".join(lines))
