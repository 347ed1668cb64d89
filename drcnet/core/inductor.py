"""Where `torch.compile` (inductor) can run, and the one compile-with-fallback of the trainer and the engine.

The training forward (drcnet/train/step.py) and the engine's tile graph (drcnet/serve/compiled.py) both ask
why_not_compile() before compiling and both fall back to the eager module on any failure: a missing toolchain
or an inductor error is never an error for the user.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys

import torch
import torch.nn as nn

from drcnet.core.paths import INDUCTOR_CACHE

log = logging.getLogger(__name__)

CPP_COMPILERS = ("c++", "g++", "clang++")    # after $CXX: what inductor's CPU backend finds on its own


def find_cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU: $CXX, else the first of CPP_COMPILERS on the PATH."""
    for name in (os.environ.get("CXX"), *CPP_COMPILERS):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def why_not_compile(device: torch.device) -> str | None:
    """None where inductor can compile for `device`, else the reason in a few words."""
    if device.type == "cpu":
        if sys.platform not in ("linux", "darwin"):
            return f"inductor's CPU backend is not supported here ({sys.platform})"
        if find_cpp_compiler() is None:
            return "no C++ compiler found (set $CXX or install g++)"
        return None
    if device.type == "cuda":
        from torch.utils._triton import has_triton
        return None if has_triton() else "Triton is not installed"
    return f"inductor does not compile for {device.type}"


def use_inductor_cache() -> str:
    """Keep inductor's on-disk cache in the repository's .cache/inductor unless TORCHINDUCTOR_CACHE_DIR is set,
    so that the next start reuses the compiled kernels (a warm start compiles in seconds, not a minute)."""
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(INDUCTOR_CACHE))


def compile_setting(text: str | bool) -> bool | str:
    """"auto", or on / off in the usual spellings (1, true, yes / 0, false, no): e.g. $DRCNET_COMPILE."""
    value = str(text).strip().lower()
    if value == "auto":
        return "auto"
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no", ""):
        return False
    raise ValueError(f"compile must be auto, on or off, got {text!r}")


class EagerFallback:
    """`module` through torch.compile (inductor, default mode); if compiling or running the compiled graph
    raises, `on_failure(error)` is called once and the eager module runs from then on."""

    def __init__(self, module: nn.Module, on_failure, **compile_kw):
        self.module, self.on_failure = module, on_failure
        try:
            use_inductor_cache()
            self.compiled = torch.compile(module, **compile_kw)
        except Exception as e:          # noqa: BLE001 (any failure means: run eagerly)
            self.compiled = None
            on_failure(e)

    def __call__(self, x):
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as e:      # noqa: BLE001
                self.compiled = None
                self.on_failure(e)
        return self.module(x)
