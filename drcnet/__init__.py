"""DRCNet Explorer: a faithful PyTorch DRCNet (ECCV 2022) with its Intra-CR loss, and a restoration engine.

The package's rooms (docs/design.md, "Layout"): core (small shared facts), model, data, serve, train, eval, ops
and demo. The names below are loaded on first use (PEP 562), so `import drcnet.core.tasks` stays light (no torch).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "PRESETS": "drcnet.model.config", "VARIANTS": "drcnet.model.config", "DRCNetConfig": "drcnet.model.config",
    "make_config": "drcnet.model.config",
    "DRCNet": "drcnet.model.network", "create_model": "drcnet.model.network",
    "count_parameters": "drcnet.model.network",
    "Restorer": "drcnet.serve.engine",
    "save_checkpoint": "drcnet.model.checkpoint", "load_checkpoint": "drcnet.model.checkpoint",
    "CheckpointError": "drcnet.model.checkpoint",
    "load_official": "drcnet.model.official",
    "load_image": "drcnet.serve.imageio", "ImageError": "drcnet.serve.imageio",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:      # AttributeError lets `from drcnet import demo` fall back to the subpackage
        raise AttributeError(f"module 'drcnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
