"""Loading a checkpoint as a DRCNet: the door the rest of the package uses.

The file format itself (drcnet/1, what its metadata holds, writing and reading it) is
drcnet.model.checkpoint_format, which knows no network so that DRCNet's Hub mixin can use it; this module sits
above the network and adds what needs it: the DRCNet class, and the authors' .pth files (drcnet.model.official).
The format's names are re-exported so that callers import everything about checkpoints from one place.
"""
from __future__ import annotations

from pathlib import Path

from drcnet.model.checkpoint_format import (FORMAT, CheckpointError, check_state_dict, load_checkpoint_as,
                                            read_metadata, save_checkpoint, storage_dtype)
from drcnet.model.network import DRCNet
from drcnet.model.official import load_official

__all__ = ["FORMAT", "CheckpointError", "check_state_dict", "load_checkpoint", "read_metadata", "save_checkpoint",
           "storage_dtype"]

OFFICIAL_SUFFIXES = (".pth", ".pt")     # the authors' PyTorch files; everything else is read as drcnet/1


def load_checkpoint(path, **config_overrides) -> tuple[DRCNet, dict]:
    """Rebuild the model from its own config and load the weights. Returns (model in eval mode, metadata)."""
    path = Path(path)
    if path.suffix in OFFICIAL_SUFFIXES:
        return load_official_checkpoint(path, **config_overrides)
    return load_checkpoint_as(path, DRCNet, **config_overrides)


def load_official_checkpoint(path: Path, **config_overrides) -> tuple[DRCNet, dict]:
    """An authors' .pth file as a checkpoint: its errors become CheckpointErrors, and it gets the metadata a
    drcnet/1 file would carry (preset "official", no training, no metrics)."""
    try:
        model = load_official(path, **config_overrides)
    except ValueError as e:   # load_official's messages already name the file
        raise CheckpointError(str(e)) from None
    model.checkpoint_metadata = {"task": "", "preset": "official", "config": model.cfg.to_dict(),
                                 "training": {}, "metrics": {}}
    return model, model.checkpoint_metadata
