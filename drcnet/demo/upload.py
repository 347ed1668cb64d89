"""What the page says the moment a photo arrives, on every tab: the reader's verdict (the same message every
handler would give later) and, for the input, which task fits it (drcnet.serve.diagnose), with that task selected; a
photo that looks clean gets a warning and no task at all, so that Restore asks which one to run (no_task_message)
rather than softening a clean photo on one click."""
from __future__ import annotations

from dataclasses import dataclass

from drcnet.demo.messages import NO_TASK, user_message
from drcnet.demo.reading import read_checked

CLEAN_HINT = ("Restoring a clean photo can only soften it. To see a task at work, tick *Degrade a clean photo "
              "first*.")


@dataclass
class UploadReport:
    message: str                    # markdown for the page; "" when there is nothing to say
    task: str | None = None         # the task to select when `select` (None: no task, the photo looks clean)
    diagnosis: dict | None = None   # drcnet.serve.diagnose's task, finding and scores (the /diagnose answer)
    select: bool = False            # change the task selection to `task` (False: leave the choice as it is)


def diagnose_file(path) -> dict:
    """{"task", "finding", "scores"} for a photo: the /diagnose endpoint. Errors as the other handlers raise."""
    from drcnet.serve.diagnose import diagnose
    d = diagnose(read_checked(path, "input image").rgb)
    return {"task": d.task, "finding": d.finding, "scores": {k: round(v, 4) for k, v in d.scores.items()}}


def clean_warning(diagnosis: dict) -> str:
    """The warning for a photo that looks clean (markdown, without the leading sign)."""
    return f"This photo {diagnosis['finding']}. {CLEAN_HINT}"


def check_input(path) -> UploadReport:
    """The input's report: the error message of an unreadable file (the task left as it is), or the diagnosis
    and the task it selects: a clean-looking photo gets a warning and no task."""
    if path in (None, ""):
        return UploadReport("")
    try:
        diagnosis = diagnose_file(path)
    except Exception as e:          # what a handler would say; anything else is the handlers' business later
        message = user_message(e)
        if message is None:
            raise
        return UploadReport(f"⚠️ {message}")
    return UploadReport(diagnosis_message(diagnosis, diagnosis["task"]), diagnosis["task"], diagnosis, select=True)


def diagnosis_message(diagnosis: dict, task: str | None) -> str:
    """What the page says about the input's diagnosis while `task` is selected (markdown): it follows the task
    choice, so a clean photo's "no task is selected" goes once a task is picked, and a choice other than the
    suggested one is acknowledged."""
    suggested = diagnosis["task"]
    if suggested is None:
        choice = ("No task is selected: pick one to restore it anyway." if not task
                  else f"Running {task} anyway, as chosen.")
        return f"⚠️ {clean_warning(diagnosis)} {choice}"
    if task == suggested:
        return f"Diagnosis: **{diagnosis['finding']}** (task selected; pick another if you know better)."
    if not task:
        return (f"Diagnosis: **{diagnosis['finding']}**. No task is selected: pick one (the diagnosis suggests "
                f"{suggested}).")
    return f"Diagnosis: **{diagnosis['finding']}**; you chose {task} instead."


def no_task_message(image=None, synthesize: bool = False) -> str:
    """What a handler answers when no task is selected: which task to run, and for a photo that looks clean
    (not one the app is asked to degrade first), the upload's warning again. Plain text (an error message)."""
    if synthesize or image in (None, ""):
        return NO_TASK
    try:
        diagnosis = diagnose_file(image)
    except Exception:               # an unreadable file: the handler's reader says so once a task is chosen
        return NO_TASK
    if diagnosis["task"] is not None:
        return f"{NO_TASK} The diagnosis suggests {diagnosis['task']}: {diagnosis['finding']}."
    return f"{NO_TASK} {clean_warning(diagnosis)}".replace("*", "")


def check_reference(path) -> str:
    """"" for a readable reference (or none), else the message the handlers would give."""
    if path in (None, ""):
        return ""
    try:
        read_checked(path, "reference image")
    except Exception as e:
        message = user_message(e)
        if message is None:
            raise
        return f"⚠️ {message}"
    return ""



