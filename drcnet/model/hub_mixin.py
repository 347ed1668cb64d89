"""DRCNet as a Hugging Face Hub model: the three calls every Hub model has (`from_pretrained`, `save_pretrained`,
`push_to_hub`), mixed into DRCNet; drcnet.model.hub builds on them (`export_for_hub`).

A model folder holds
    model.safetensors  the weights; their metadata carries the config, the training summary, the measured metrics
                       and every other checkpoint key (drcnet.model.checkpoint_format), so this file alone rebuilds the
                       model, timm-style;
    config.json        the same config, for people and tools that read the Hub's convention (checked on load);
    README.md          the model card, YAML front matter first (drcnet.model.card).

Written by hand rather than with huggingface_hub's PyTorchModelHubMixin, whose defaults are wrong for us: it
writes weights without our metadata, loads with strict=False, and push_to_hub replaces a hand-written card.

The mixin sits below the network (DRCNet inherits it), so it never names DRCNet: from_pretrained builds `cls`.
It reads drcnet/1 safetensors only; the authors' .pth files load through drcnet.model.checkpoint.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from drcnet.core.paths import HUB_CARD, HUB_CONFIG, HUB_WEIGHTS, find_weights
from drcnet.model.card import minimal_card
from drcnet.model.checkpoint_format import FORMAT, CheckpointError, load_checkpoint_as, save_checkpoint

# Keys save_checkpoint takes by name; every other metadata key (e.g. "weights", "inference") travels as extra.
NAMED_KEYS = ("task", "preset", "training", "metrics")
REBUILT_KEYS = ("format", "config")       # written afresh from the model itself


class HubMixin:
    """Mixed into DRCNet. A model loaded from a checkpoint remembers its metadata here (load_checkpoint_as sets
    it)."""

    checkpoint_metadata: dict | None = None

    @classmethod
    def from_pretrained(cls, source, *, revision: str | None = None, cache_dir=None, token: str | None = None,
                        local_files_only: bool = False, **config_overrides):
        """The model from a model folder, a .safetensors file, a task name ("denoise": the shipped checkpoint) or
        a Hub repository id ("owner/name", downloaded into huggingface_hub's cache); see core.paths.find_weights.
        Loading is strict: a missing, unexpected or mis-shaped key is a CheckpointError."""
        path = find_weights(source, revision=revision, cache_dir=cache_dir, token=token,
                            local_files_only=local_files_only)
        model, meta = load_checkpoint_as(path, cls, **config_overrides)
        check_config_json(path, meta)
        return model

    def save_pretrained(self, folder, *, card: str | None = None, metadata: dict | None = None,
                        dtype: str = "float32") -> Path:
        """Write model.safetensors, config.json and README.md into folder. metadata: keys added to (or replacing)
        the loaded checkpoint's; card: the README's text (else an existing README.md is kept, or a minimal card
        written); dtype: storage of the weights ("float16" halves the file)."""
        folder = Path(folder)
        meta = {**(self.checkpoint_metadata or {}), **(metadata or {})}
        extra = {k: v for k, v in meta.items() if k not in NAMED_KEYS + REBUILT_KEYS}
        save_checkpoint(folder / HUB_WEIGHTS, self, task=meta.get("task") or "", preset=meta.get("preset") or "",
                        training=meta.get("training"), metrics=meta.get("metrics"), extra=extra, dtype=dtype)
        (folder / HUB_CONFIG).write_text(json.dumps(config_json(self.cfg, meta), indent=1) + "\n")
        readme = folder / HUB_CARD
        if card is not None:
            readme.write_text(card)
        elif not readme.is_file():
            readme.write_text(minimal_card(meta))
        return folder

    def push_to_hub(self, repo_id: str, *, card: str | None = None, dtype: str = "float32",
                    private: bool | None = None, token: str | None = None,
                    commit_message: str = "Upload DRCNet weights"):
        """save_pretrained into a temporary folder and upload it (the card included) to the Hub repository
        repo_id, created if missing. Returns huggingface_hub's CommitInfo."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, card=card, dtype=dtype)
            return api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)


def config_json(cfg, meta: dict) -> dict:
    return {"format": FORMAT, "task": meta.get("task") or "", "preset": meta.get("preset") or "",
            "config": cfg.to_dict()}


def check_config_json(weights: Path, meta: dict) -> None:
    """A model folder's config.json must say what its weights' own metadata says: the two never drift apart
    silently (an edited config.json is refused, not half-applied)."""
    config = weights.parent / HUB_CONFIG
    if weights.name != HUB_WEIGHTS or not config.is_file():
        return
    try:
        written = json.loads(config.read_text()).get("config")
    except (json.JSONDecodeError, AttributeError):
        raise CheckpointError(f"{config}: not a JSON object") from None
    if written != meta.get("config"):
        differing = sorted(k for k in {*(written or {}), *meta.get("config", {})}
                           if (written or {}).get(k) != meta["config"].get(k))
        raise CheckpointError(f"{config} disagrees with the config inside {weights.name} on {differing}; the "
                              f"weights file's own config is the one they were trained with")

