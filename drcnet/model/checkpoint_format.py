"""The checkpoint file format (drcnet/1): safetensors weights whose metadata carries everything needed to
rebuild and describe the model.

Metadata (all strings, as safetensors requires; JSON where structured):
    format   "drcnet/1"
    task     denoise | derain | deblur | ... (free text)
    preset   the preset name the config started from
    config   JSON of DRCNetConfig.to_dict() (t and delta included)
    training JSON summary (iterations, batch, patch, wall time, command ...)
    metrics  JSON of measured numbers (PSNR/SSIM ...)

safetensors rather than torch.save: loading cannot execute code, and the header is readable without torch.

Shipped checkpoints store their weights in float16 (half the size, so the repository travels to a GPU
machine); they are loaded back as float32. float16 rather than bfloat16: its 10-bit mantissa keeps a restored
image 85-97 dB PSNR from the float32 weights' on the three task models, bfloat16 only 70-81 dB (measured by
perturbing the shipped weights and rounding them each way). Training runs keep float32.

This module knows the file, not the network: it builds whatever model class it is handed (`load_checkpoint_as`),
so the Hub mixin that DRCNet inherits can use it without an import circle. drcnet.model.checkpoint is the
door callers use: it adds the DRCNet class and the authors' .pth files.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import torch

from drcnet.core.files import atomic_write
from drcnet.model.config import DRCNetConfig
from drcnet.model.inference import INFERENCE_KEY, InferenceSpec

FORMAT = "drcnet/1"

Model = TypeVar("Model", bound=torch.nn.Module)   # any model class with a .cfg (a DRCNetConfig)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def save_checkpoint(path, model: torch.nn.Module, *, task: str = "", preset: str = "", training: dict | None = None,
                    metrics: dict | None = None, extra: dict | None = None, dtype: str = "float32",
                    inference: InferenceSpec | None = None) -> Path:
    """Write atomically (temp file + rename), so a kill at any moment leaves the old file or the new one.
    dtype: the storage type of the floating-point weights ("float16" for shipped checkpoints).
    inference: how the model is meant to be run (drcnet/model/inference.py); by default the spec of the
    training patch, so every checkpoint carries one."""
    from safetensors.torch import save_file

    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"unknown storage dtype {dtype!r}; choose one of {sorted(STORAGE_DTYPES)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", STORAGE_DTYPES[dtype] if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "task": task, "preset": preset, "config": json.dumps(model.cfg.to_dict()),
            "training": json.dumps(training or {}), "metrics": json.dumps(metrics or {}),
            INFERENCE_KEY: json.dumps((inference or InferenceSpec.for_patch((training or {}).get("patch"))).to_meta())}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return path


def read_metadata(path) -> dict:
    """The parsed metadata of a checkpoint, without loading its tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as e:  # safetensors raises several types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a DRCNet checkpoint (metadata format is {raw.get('format')!r}, "
                              f"expected {FORMAT!r})")
    meta = dict(raw)
    for key in ("config", "training", "metrics", INFERENCE_KEY):
        try:
            meta[key] = json.loads(raw.get(key) or "{}")
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: metadata field {key!r} is not valid JSON") from None
    return meta


def load_checkpoint_as(path, model_class: type[Model], **config_overrides) -> tuple[Model, dict]:
    """Build model_class from the file's own config and load the weights strictly. Returns (model in eval mode,
    metadata); the model keeps the metadata as checkpoint_metadata."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path)
    if not meta["config"]:
        raise CheckpointError(f"{path}: metadata has no model config")
    try:
        cfg = DRCNetConfig.from_dict({**meta["config"], **config_overrides})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad config in metadata ({e})") from None
    try:
        state = load_file(str(path))
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read tensors, the file is corrupt or truncated ({e})") from None
    model = model_class(cfg)
    check_state_dict(model, state, path)
    model.load_state_dict(state)            # copies into the float32 parameters, whatever the storage type
    model.checkpoint_metadata = meta        # travels on: save_pretrained writes every key back
    return model.eval(), meta


def storage_dtype(path) -> str:
    """The STORAGE_DTYPES name the floating-point weights of a checkpoint file are stored in ("float16" for the
    shipped ones), so a copy can keep them exactly as they are."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        stored = {f.get_slice(k).get_dtype() for k in f.keys()}
    return "float16" if "F16" in stored and "F32" not in stored else "float32"


def check_state_dict(model: torch.nn.Module, state: dict, source) -> None:
    """Raise a CheckpointError naming missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch {_short(shapes)}")
    if problems:
        raise CheckpointError(f"{source}: weights do not fit the model: " + "; ".join(problems))


def _short(items, n=6):
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")
