"""The folder `drcnet export-hub` writes: any checkpoint (a task, a file, the authors' .pth, a folder or a Hub id)
as a model folder ready to upload.

The Hub calls themselves (from_pretrained, save_pretrained, push_to_hub) and the folder's layout are DRCNet's
mixin, drcnet.model.hub_mixin; this module sits above the network because it loads any checkpoint as a DRCNet.
"""
from __future__ import annotations

from pathlib import Path

from drcnet.core.paths import find_weights
from drcnet.model.card import card_for_weights
from drcnet.model.checkpoint import OFFICIAL_SUFFIXES, load_checkpoint
from drcnet.model.checkpoint_format import storage_dtype


def export_for_hub(source, folder) -> Path:
    """A folder ready to upload: the weights of `source` (a task, file, folder or Hub id) in their stored
    precision, config.json, and README.md: the card beside the weights under front matter made from the
    test evaluation beside them (the model-index), or a minimal card."""
    weights = find_weights(source)
    model, meta = load_checkpoint(weights)
    # an authors' .pth has no stored precision of ours: it is written in float32
    dtype = "float32" if Path(weights).suffix in OFFICIAL_SUFFIXES else storage_dtype(weights)
    return model.save_pretrained(folder, card=card_for_weights(weights, meta), dtype=dtype)
