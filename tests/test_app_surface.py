"""What app.py shows to visitors, API clients and agents, without a browser or a port: its MCP tools (the documented
endpoints, described by their docstrings), the endpoints' settings wired to the right controls, a missing task
as a warning that asks, a GPU out-of-memory error as a plain message, the upload message following the task, an
example click on Restore served from the result computed at start-up, and what start-up warms first.

app.py runs as __main__ with Blocks.launch and the start-up warm-up recorded instead of run."""
from __future__ import annotations

import base64
import inspect
import logging
import os
import runpy
import time
import warnings
from pathlib import Path

import pytest

from drcnet import demo as D

from conftest import tiny_checkpoints

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_HANDLERS = ("restore", "inspect", "coverage_t", "inspect_figure", "t_sweep", "intra_cr", "compare",
                     "compare_on_page")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """app.py's globals after `python app.py` on tiny checkpoints, with an empty example store."""
    import gradio as gr

    recorded = {}
    mp = pytest.MonkeyPatch()
    ckdir = tmp_path_factory.mktemp("ck")
    tiny_checkpoints(ckdir, D.TASKS)
    mp.setenv("DRCNET_CHECKPOINTS", str(ckdir))
    mp.setenv("DRCNET_EXAMPLE_CACHE", str(tmp_path_factory.mktemp("examples")))
    mp.setattr(gr.Blocks, "launch", lambda self, *a, **kw: recorded.update(launch=kw))
    mp.setattr(gr.Blocks, "block_thread", lambda self: None)
    mp.setattr(D.Registry, "warm_up", lambda self, *args, **kwargs: recorded.update(warm_up=(args, kwargs)))
    drcnet_log = logging.getLogger("drcnet")            # app.py adds its handler; the other tests get it back bare
    mp.setattr(drcnet_log, "handlers", list(drcnet_log.handlers))
    mp.setattr(drcnet_log, "level", drcnet_log.level)
    try:
        namespace = runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
        yield {**namespace, "recorded": recorded}
    finally:
        mp.undo()


# ---------------------------------------------------------------- MCP tools and API visibility

def first_paragraph(fn) -> str:
    return " ".join(inspect.getdoc(fn).split("\n\n")[0].split())


def test_the_documented_endpoints_are_mcp_tools_described_by_their_docstrings(app):
    pytest.importorskip("mcp")
    import gradio as gr
    from gradio.mcp import GradioMCPServer

    assert app["recorded"]["launch"]["mcp_server"] is True
    server = GradioMCPServer(app["demo"])
    tools = server.tool_to_endpoint
    assert {"restore", "diagnose", "inspect", "compare"} <= set(tools)
    private = {"on_upload", "follow_task", "settle_task", "pick_task", "example_values", "stored_example", "restore_unless_stored", "zoom",
               "compare_pair", "compare_choices", "compare_figure", "on_reference_upload", "compare_on_page"}
    assert not private & set(tools) and not any("lambda" in name for name in tools)
    for name in ("restore", "diagnose", "inspect", "compare"):
        block_fn = server.get_block_fn_from_endpoint_name(tools[name])
        description, parameters = server.get_fn_description(block_fn, name)
        assert description.startswith(first_paragraph(app[name])), description
        schema, files = server.get_input_schema(name, parameters)
        assert ["image"] in files                                   # a URL or a data URL, turned into a file
        assert all(prop.get("description") for prop in schema["properties"].values()), (name, schema)
        # no State among a tool's outputs: Gradio 6.31 answers such a tool with an error unless the client asks
        # for progress notifications
        assert not any(isinstance(out, gr.State) for out in block_fn.outputs), name
    png = base64.b64encode((D.ASSETS / "hubble_noise.png").read_bytes()).decode()
    converted = server.convert_strings_to_filedata({"image": f"data:image/png;base64,{png}"}, [["image"]])
    assert Path(converted["image"]["path"]).read_bytes() == (D.ASSETS / "hubble_noise.png").read_bytes()


def test_no_listener_is_declared_with_api_name_false():
    for path in [ROOT / "app.py", *sorted((ROOT / "drcnet" / "demo").glob("*.py"))]:
        assert "api_name=False" not in path.read_text(), path


def test_every_handler_gets_each_setting_from_its_own_control(app):
    """The settings' order is InputSettings': each handler's parameter named after a setting is wired to that
    setting's control (elem_id setting-<name>), whatever the fields' order."""
    checked = set()
    for block_fn in app["demo"].fns.values():
        name = getattr(block_fn.fn, "__name__", "")
        if name not in SETTINGS_HANDLERS or block_fn.fn is not app[name]:
            continue
        params = [p for p in inspect.signature(block_fn.fn).parameters if p != "progress"]
        assert len(params) == len(block_fn.inputs), name
        for param, component in zip(params, block_fn.inputs):
            if param in D.InputSettings.names():
                assert component.elem_id == f"setting-{param}", (name, param, component.elem_id)
        checked.add(name)
    assert checked == set(SETTINGS_HANDLERS)


# ---------------------------------------------------------------- rough edges

def test_a_missing_task_is_a_warning_that_asks_and_changes_nothing(app):
    import gradio as gr

    photo = str(D.ASSETS / "coffee_clean.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert app["restore"](photo, None) == gr.skip()
        assert list(app["compare"](photo, "")) == [gr.skip()]
    asked = [str(w.message) for w in caught if "No task selected" in str(w.message)]
    assert len(asked) == 2 and "looks clean" in asked[0]


def test_a_gpu_out_of_memory_error_suggests_a_smaller_image(app):
    import gradio as gr
    import torch

    def runs_out(image):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(gr.Error) as e:
        app["user_errors"](runs_out)("big.png")
    assert "GPU memory" in e.value.message and "smaller" in e.value.message
    assert "Unexpected" not in e.value.message


def test_the_upload_message_follows_the_task_choice(app):
    import gradio as gr

    message, suggestion, diagnosis = app["on_upload"](str(D.ASSETS / "coffee_clean.png"))
    assert suggestion == {"task": None} and "No task is selected" in message
    picked, flag = app["pick_task"](diagnosis, "denoise")
    assert "No task is selected" not in picked and "denoise" in picked and "looks clean" in picked and flag is True
    assert app["follow_task"](None, "denoise") == gr.skip()        # an unreadable file's message stays


def test_a_task_picked_while_the_upload_check_runs_is_kept(app):
    """The check answers a second or so after the upload; a task the visitor picked meanwhile stays selected
    (it used to be emptied by a clean photo's answer, and Compare then ran without a task)."""
    import gradio as gr

    message, suggestion, diagnosis = app["on_upload"](str(D.ASSETS / "coffee_clean.png"))
    task, later = app["settle_task"](message, suggestion, True, diagnosis, "denoise")
    assert task == gr.skip() and "denoise" in later and "No task is selected" not in later
    task, later = app["settle_task"](message, suggestion, False, diagnosis, "denoise")   # nobody picked: emptied
    assert task["__type__"] == "update" and task["value"] is None and later == message
    assert app["settle_task"]("unreadable", None, False, None, "derain") == (gr.skip(), "unreadable")  # left alone
    assert app["settle_task"]("unreadable", None, True, None, "derain") == (gr.skip(), "unreadable")


# ---------------------------------------------------------------- instant examples and start-up

def test_an_example_click_on_restore_shows_its_stored_result_without_running_the_model(app, monkeypatch):
    import gradio as gr

    examples, registry = app["EXAMPLES"], app["EXAMPLE_REGISTRY"]
    index = next(i for i, row in enumerate(D.examples()) if row[1] == "denoise")
    assert examples.fill(registry, "denoise") > 0
    stored = examples.get(registry, index)
    monkeypatch.setattr(app["REGISTRY"], "model_for", lambda task: pytest.fail("the model ran on a stored example"))
    start = time.perf_counter()
    (before, after), stage1, facts, download = app["stored_example"](index, True)
    seconds = time.perf_counter() - start
    assert (before, after, stage1, download) == tuple(map(str, (stored.before, stored.after, stored.stage1,
                                                                 stored.download)))
    assert facts == stored.facts and seconds < 0.1
    assert app["stored_example"](index, False)[1] is None           # the stage-1 output only when asked for
    assert app["restore_unless_stored"](index, True) == gr.skip()   # and the model is not run after it


def test_an_example_without_a_stored_result_runs_the_model(app):
    import gradio as gr

    index = next(i for i, row in enumerate(D.examples()) if row[1] == "derain")
    assert app["EXAMPLES"].get(app["EXAMPLE_REGISTRY"], index) is None
    assert app["stored_example"](index, False) == gr.skip()
    (before, after), _, facts, download = app["restore_unless_stored"](index, False)
    assert os.path.isfile(after) and "derain" in facts and "start-up" not in facts


def test_an_example_click_on_restore_fills_the_controls_and_the_result_in_one_answer(app):
    """One round trip outside the queue: the gallery's select listener answers with the controls' values and, on
    the Restore tab, the stored result; on another tab it leaves Restore's outputs alone."""
    import gradio as gr

    index = next(i for i, row in enumerate(D.examples()) if row[1] == "denoise")
    app["EXAMPLES"].fill(app["EXAMPLE_REGISTRY"], "denoise")
    event = gr.SelectData(None, {"index": index, "value": None})
    answer = app["example_values"]("restore", False, event)
    row = D.examples()[index]
    assert list(answer[:len(row)]) == row and answer[len(row) + 3] == index
    assert answer[-app["RESTORE_OUTPUTS"]:] == app["stored_example"](index, False)
    elsewhere = app["example_values"]("inspect", False, event)
    assert all(value == gr.skip() for value in elsewhere[-app["RESTORE_OUTPUTS"]:])
    gallery = next(b for b in app["demo"].blocks.values() if getattr(b, "elem_id", None) == "examples")
    select = next(fn for fn in app["demo"].fns.values() if any(t[0] == gallery._id for t in fn.targets))
    assert select.queue is False
    assert any(getattr(o, "elem_id", None) == "restore-slider" for o in select.outputs)


def test_the_app_writes_its_own_messages_to_stderr_with_their_times(app):
    """`python app.py` logs the start-up's steps and the graphs' fate (INFO) on stderr: without a handler Python
    prints warnings only, and a start-up that ran for minutes left no trace of where."""
    from drcnet.demo.gradio_parts import log_to_stderr

    handlers = [h for h in logging.getLogger("drcnet").handlers if getattr(h, "drcnet_app", False)]
    assert len(handlers) == 1 and log_to_stderr() is handlers[0]        # a second call adds none
    line = handlers[0].format(logging.makeLogRecord({"name": "drcnet.app", "msg": "x", "levelno": logging.INFO}))
    assert line.endswith("drcnet.app: x") and line[:4].isdigit()       # the time first
    assert logging.getLogger("drcnet.serve.compiled").isEnabledFor(logging.INFO)
    assert not logging.getLogger("drcnet.serve.compiled").isEnabledFor(logging.DEBUG)


def test_start_up_warms_the_task_the_page_selects_first_then_stores_the_examples(app):
    (tasks,), options = app["recorded"]["warm_up"]
    after_each = options["after_each"]
    radio = next(b for b in app["demo"].blocks.values() if getattr(b, "elem_id", None) == "task")
    assert tasks[0] == radio.value and sorted(tasks) == sorted(D.TASKS)
    assert after_each.func == app["EXAMPLES"].fill and after_each.args == (app["EXAMPLE_REGISTRY"],)
    launch = app["recorded"]["launch"]
    assert str(app["EXAMPLES"].folder) in launch["allowed_paths"]
