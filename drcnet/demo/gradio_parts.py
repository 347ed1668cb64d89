"""The Gradio pieces app.py builds on (imported by app.py only: the rest of drcnet.demo runs without Gradio):
the upload component that keeps the file's path, the guard that turns a user's errors into gr.Error (and a missing
task into a warning that asks), and the example-click listener that runs only on the visitor's tab."""
from __future__ import annotations

import contextlib
import functools
import inspect as inspect_module
import logging
from pathlib import Path
from typing import Callable

import gradio as gr

from drcnet.demo.messages import NoTaskSelected, hide_paths, user_message

log = logging.getLogger("drcnet.app")


class PathImage(gr.Image):
    """gr.Image that hands the uploaded file's path over untouched: gr.Image(type="filepath") still opens the
    file with PIL first (an unreadable upload then fails inside Gradio with a generic message, and a non-RGB
    image_mode converts it). Decoding, EXIF, 16-bit, alpha and the bomb guard are drcnet.serve.imageio's job."""
    is_template = True              # the browser side is the ordinary Image component

    def preprocess(self, payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return super().preprocess(payload)


def errors_shown_to_users(folder: Callable[[], Path]):
    """The decorator user_errors for the app's handlers; folder(): the checkpoint folder that messages hide."""
    def user_errors(fn):
        return _guard(fn, folder)
    return user_errors


def _guard(fn, folder):
    """Errors a user can act on become gr.Error (shown in the UI, raised by gradio_client with this text); a
    missing task becomes a warning that asks which task to run, and the outputs stay as they were; anything else
    is logged and reported briefly, and the app stays up. Generators (Compare) are wrapped as generators, so an
    error in a later step is caught too."""
    if inspect_module.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                with _user_errors(fn, folder):
                    yield from fn(*args, **kwargs)
            except NoTaskSelected as question:
                yield _ask(question)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with _user_errors(fn, folder):
                return fn(*args, **kwargs)
        except NoTaskSelected as question:
            return _ask(question)
    return wrapper


def _ask(question: NoTaskSelected):
    """A question for the visitor (which task to run): a warning toast, and no output changes (one gr.skip()
    stands for all of a handler's outputs)."""
    gr.Warning(str(question))
    return gr.skip()


@contextlib.contextmanager
def _user_errors(fn, folder):
    try:
        yield
    except (gr.Error, NoTaskSelected):
        raise
    except Exception as e:
        message = user_message(e, folder())         # a bad file, a missing checkpoint, out of memory
        if message is not None:
            raise gr.Error(message, print_exception=False) from None
        log.exception("unexpected error in %s", getattr(fn, "__name__", fn))
        raise gr.Error(f"Unexpected error ({type(e).__name__}: {hide_paths(str(e), folder())}); "
                       "the app is still running.") from None


def mcp_installed() -> bool:
    """Whether Gradio can serve the app's endpoints as MCP tools: the `mcp` package (the `mcp` extra) is there."""
    import importlib.util
    return importlib.util.find_spec("mcp") is not None


def log_to_stderr(level: int = logging.INFO) -> logging.Handler:
    """The app's own messages on stderr, each with its time: the start-up's steps (drcnet.demo.registry), a graph
    built or loaded and its agreement with eager, a request served eagerly (drcnet.serve.compiled). Without a
    handler Python prints warnings only, and a slow start-up left no trace of which step it was in. Once per
    process: a second call returns the handler the first one added."""
    logger = logging.getLogger("drcnet")
    for handler in logger.handlers:
        if getattr(handler, "drcnet_app", False):
            return handler
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    handler.drcnet_app = True
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def only_on(tab: str, fn, outputs: int):
    """fn as a listener of an example click that runs only when the visitor is on `tab` (the first argument,
    the current tab's id); on any other tab it changes none of its `outputs`. Generators stay generators."""
    skip = tuple(gr.skip() for _ in range(outputs))
    takes_progress = "progress" in inspect_module.signature(fn).parameters
    if inspect_module.isgeneratorfunction(fn):
        def run_stream(current, *args, progress=gr.Progress()):
            if current != tab:
                yield skip
                return
            yield from fn(*args, **({"progress": progress} if takes_progress else {}))
        return run_stream

    def run(current, *args, progress=gr.Progress()):
        if current != tab:
            return skip
        return fn(*args, **({"progress": progress} if takes_progress else {}))
    return run
