"""What the page says the moment a photo arrives, on every tab: the reader's verdict (the same message every
handler would give later) and, for the input, which task fits it (drcnet.diagnose), with that task selected."""
from __future__ import annotations

from dataclasses import dataclass

from . import check_usable, load, user_message

CLEAN_HINT = ("Restoring a clean photo can only soften it. To see a task at work, tick *Degrade a clean photo "
              "first*.")


@dataclass
class UploadReport:
    message: str                    # markdown for the page; "" when there is nothing to say
    task: str | None = None         # the task to select (None: leave the choice as it is)
    diagnosis: dict | None = None   # drcnet.diagnose's task, finding and scores (the /diagnose answer)


def read_checked(path, what: str):
    """Load an upload as every handler would (drcnet.imageio, the size guards); errors as the handlers raise."""
    loaded = load(path, what)
    check_usable(loaded)
    return loaded


def diagnose_file(path) -> dict:
    """{"task", "finding", "scores"} for a photo: the /diagnose endpoint. Errors as the other handlers raise."""
    from ..diagnose import diagnose
    d = diagnose(read_checked(path, "input image").rgb)
    return {"task": d.task, "finding": d.finding, "scores": {k: round(v, 4) for k, v in d.scores.items()}}


def check_input(path) -> UploadReport:
    """The input's report: the error message of an unreadable file, or the diagnosis and the task it suggests
    (a clean-looking photo gets a warning and no task change)."""
    if path in (None, ""):
        return UploadReport("")
    try:
        diagnosis = diagnose_file(path)
    except Exception as e:          # what a handler would say; anything else is the handlers' business later
        message = user_message(e)
        if message is None:
            raise
        return UploadReport(f"⚠️ {message}")
    if diagnosis["task"] is None:
        return UploadReport(f"⚠️ This photo {diagnosis['finding']}. {CLEAN_HINT}", None, diagnosis)
    return UploadReport(f"Diagnosis: **{diagnosis['finding']}** (task selected; pick another if you know "
                        "better).", diagnosis["task"], diagnosis)


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



