"""Child processes for the long-running commands (the GPU burst, the relay, the ablation): run one with its
output echoed and kept, stop it so that it saves, (the machine they ran on: drcnet.core.device).

A training child has loader workers of its own, and they inherit its output pipe. Killing only the child and
then reading the pipe to its end would wait for those workers forever, so every child here runs in its own
process group, writes to a file rather than a pipe, and is stopped as a group: SIGINT first (the trainer saves
its state on the first Ctrl-C), SIGKILL after a grace period.
"""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile

from drcnet.core.paths import REPO as ROOT  # noqa: E402  (jobs run in the repository: its scripts, its runs/)
TIMED_OUT = -9          # the exit code reported for a child stopped at its timeout


def log(*args) -> None:
    print(*args, flush=True)


def stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGINT to the child (it saves), then SIGKILL to its whole process group if it is still there."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_logged(cmd: list[str], timeout: float | None, env=None, grace: float = 20.0,
               on_start=None) -> tuple[int, str]:
    """Run a child in its own process group, echo the tail of its output, return (exit code, output).

    timeout (seconds, None for none) stops it with stop_group and the code TIMED_OUT. on_start(proc) is called
    once it runs (the relay keeps it to forward SIGTERM)."""
    log("$", " ".join(cmd))
    with tempfile.TemporaryFile(mode="w+b") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        if on_start is not None:
            on_start(proc)
        try:
            code = proc.wait(timeout=None if timeout is None else max(1.0, timeout))
        except subprocess.TimeoutExpired:
            log(f"   timeout after {timeout:.0f} s: stopping {cmd[0]} (pid {proc.pid})")
            stop_group(proc, grace=min(grace, max(1.0, timeout / 10)))
            code = TIMED_OUT
        except BaseException:               # Ctrl-C of the parent: the child saves, then we go
            stop_group(proc, grace)
            raise
        sink.seek(0)
        out = sink.read().decode(errors="replace")
    for line in out.splitlines()[-15:]:
        log("   ", line)
    return code, out
