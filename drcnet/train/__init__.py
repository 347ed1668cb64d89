"""Training: the trainer (drcnet/train/trainer.py, `python -m drcnet.train`), the per-task recipes, the losses,
the VGG19 features of the contrastive loss and the DFR mask statistics.

Importing this package loads nothing heavy. For now the trainer's public names are also reachable here
(`from drcnet.train import TrainConfig, train`), loaded on first use from drcnet.train.trainer; patch them in
that module, not here.
"""
from __future__ import annotations

import importlib


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    try:     # a submodule first (drcnet.train.recipe ...), then the trainer's names
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
    trainer = importlib.import_module("drcnet.train.trainer")
    try:
        return getattr(trainer, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
