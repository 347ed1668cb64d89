"""drcnet.eval.app_timing's own arithmetic: the "start-up work done" wait must see the children that build the
compiled graphs, not only the app's process (else the steady requests are timed beside a compiler)."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drcnet.eval.app_timing import cpu_seconds


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_cpu_seconds_count_the_grandchildren_of_the_app():
    busy = "import time\nend = time.time() + 3\nwhile time.time() < end: pass"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}])"])
    try:
        time.sleep(1.0)
        first = cpu_seconds(parent.pid)
        time.sleep(1.0)
        assert cpu_seconds(parent.pid) - first > 0.5          # the spinning grandchild, not the waiting parent
    finally:
        parent.wait(10)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_cpu_seconds_keep_a_child_that_has_ended():
    busy = "import time\nend = time.time() + 1\nwhile time.time() < end: pass"
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time; "
                               f"subprocess.run([sys.executable, '-c', {busy!r}]); time.sleep(3)"])
    try:
        time.sleep(0.8)
        during = cpu_seconds(parent.pid)               # the child spinning
        time.sleep(1.5)                                # it has ended and been waited for; the parent sleeps
        assert cpu_seconds(parent.pid) >= during + 0.1
    finally:
        parent.wait(10)


def test_the_engine_seconds_are_read_from_the_facts_the_restore_tab_writes():
    """measure_app splits each first-minutes request into round trip and engine by the facts line: the parser
    must follow the restore tab's own format."""
    from types import SimpleNamespace

    from drcnet.demo.restore_tab import _facts
    from drcnet.eval.app_timing import engine_seconds

    stats = dict(size=(512, 384), device="cpu", precision="bf16", seconds=0.8349, tiles=9)
    prepared = SimpleNamespace(synthetic=False, notes=["resized 2.5 s ago"], info={})
    facts = _facts("denoise", stats, "DFR statistics matched | compiled graph (9 x 176 px tiles)", None, prepared)
    assert engine_seconds(facts) == 0.83


def test_the_measuring_client_downloads_into_memory_where_the_machine_has_it(tmp_path, monkeypatch):
    """Its file writes on disk waited behind the graph builds' writes: the client downloads into the memory file
    system when there is one, else beside the photo."""
    import drcnet.eval.app_timing as app_timing

    memory = tmp_path / "shm"
    memory.mkdir()
    monkeypatch.setattr(app_timing, "MEMORY_FS", memory)
    assert app_timing.client_downloads(tmp_path / "photo").parent == memory
    monkeypatch.setattr(app_timing, "MEMORY_FS", tmp_path / "none")
    assert app_timing.client_downloads(tmp_path / "photo") == tmp_path / "photo" / "downloads"


def test_the_measuring_clients_http_calls_reuse_one_tls_context(monkeypatch):
    """gradio_client opens a new httpx client per call; with the measuring client's options none of them loads
    the CA bundle again (28 ms each, about 0.15 s of a /restore round trip that is not the app's)."""
    import ssl

    import httpx

    from drcnet.eval.app_timing import client_options

    context = client_options()["ssl_verify"]      # gradio_client passes it to every httpx call as `verify`
    loads = []
    real = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", lambda self, *a, **k: loads.append(a) or real(self, *a, **k))
    for _ in range(3):
        httpx.Client(verify=context).close()
    assert loads == []
    httpx.Client().close()          # what a call without the options does: the check can see a load
    assert loads


def test_wait_until_quiet_waits_for_work_not_for_an_idle_server_loop():
    """A process tree that polls lightly (about 10 % of a core; the idle app's server loop takes 4-5 %) is quiet at
    once; one whose child burns a core is quiet only once that child has ended."""
    import subprocess
    import sys

    from drcnet.eval.app_timing import wait_until_quiet

    light = "import time\nwhile True:\n    t = time.perf_counter()\n    while time.perf_counter() - t < 0.006: pass\n" \
            "    time.sleep(0.05)\n"
    busy = "import subprocess, sys, time\n" \
           "subprocess.run([sys.executable, '-c', 'import time\\nt = time.perf_counter()\\n" \
           "while time.perf_counter() - t < 1.5: pass'])\ntime.sleep(60)\n"
    for code, at_least, at_most in ((light, 0.0, 1.5), (busy, 1.4, 4.0)):
        proc = subprocess.Popen([sys.executable, "-c", code])
        try:
            waited = wait_until_quiet(proc.pid, window=0.3, windows=3, timeout=10)
        finally:
            proc.kill()
            proc.wait()
        assert at_least <= waited <= at_most, (code, waited)
