"""Load state dicts saved by the authors' public code (github leefly072/DRCNet @ 5f068a0, spec section 7).

The public code names modules after HINet (down_path_1.0.conv_1 ...). We keep readable names and translate
keys here, once. The loaded model switches to that code's arithmetic: "official" region statistics, t = 0.8 and
SimAM lambda 1e-4, unless the caller overrides them.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from drcnet.model.config import DRCNetConfig
from drcnet.model.network import DRCNet

OFFICIAL_DEFAULTS = dict(region_stats="official", t=0.8, delta=1e-4)

_ENCODER = {
    "conv_1": "dfr.spatial.conv",
    "conv_2": "dfr.energy.conv",
    "identity": "dfr.identity",
    "norm.sa.conv1": "dfr.spatial.filter.response.conv",
    "norm.sa.gamma_conv": "dfr.spatial.filter.gamma_conv",
    "norm.sa.beta_conv": "dfr.spatial.filter.beta_conv",
    "norm.rn.bn_norm": "dfr.spatial.filter.region_norm.norm",
    "downsample": "down",
    "csff_enc": "csff_enc",
    "csff_dec": "csff_dec",
}


def _unwrap(obj, source) -> dict:
    if isinstance(obj, dict):
        for key in ("params_ema", "params", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
        return obj
    raise ValueError(f"{source}: expected a state dict, got {type(obj).__name__}")


def translate_key(key: str, depth: int) -> str | None:
    """Official key -> our key, or None when the key is not part of the official model."""
    key = key.removeprefix("module.")
    prefix, _, param = key.rpartition(".")
    if prefix in ("conv_01", "conv_02", "cat12", "last", "sam12.conv1", "sam12.conv2", "sam12.conv3"):
        return key
    m = re.fullmatch(r"down_path_([12])\.(\d+)\.(.+)", prefix)
    if m and m.group(3) in _ENCODER:
        return f"stage{m.group(1)}.encoder.{m.group(2)}.{_ENCODER[m.group(3)]}.{param}"
    # Decoders are listed bottom-up in the official code: index j is level depth-2-j.
    m = re.fullmatch(r"up_path_([12])\.(\d+)\.(up|conv_block\.conv_1|conv_block\.conv_2|conv_block\.identity)", prefix)
    if m:
        level = depth - 2 - int(m.group(2))
        name = m.group(3).replace("conv_block", "block")
        return f"stage{m.group(1)}.decoder.{level}.{name}.{param}"
    m = re.fullmatch(r"skip_conv_([12])\.(\d+)", prefix)
    if m:
        return f"stage{m.group(1)}.decoder.{depth - 2 - int(m.group(2))}.skip_conv.{param}"
    return None


def load_official(state_dict_or_path, **overrides) -> DRCNet:
    """Our DRCNet with the weights of an official checkpoint (plain or BasicSR-wrapped)."""
    source = state_dict_or_path if isinstance(state_dict_or_path, (str, Path)) else "state dict"
    if isinstance(state_dict_or_path, (str, Path)):
        try:
            obj = torch.load(state_dict_or_path, map_location="cpu", weights_only=True)  # never an untrusted pickle
        except Exception as e:
            raise ValueError(f"{source}: cannot load as a weights-only PyTorch file ({e})") from None
    else:
        obj = state_dict_or_path
    state = _unwrap(obj, source)
    keys = [k.removeprefix("module.") for k in state]
    if "conv_01.weight" not in keys:
        raise ValueError(f"{source}: not an official DRCNet state dict (no conv_01.weight)")
    depth = 1 + max(int(m.group(1)) for k in keys if (m := re.match(r"down_path_1\.(\d+)\.", k)))
    wf, in_ch = state[next(k for k in state if k.endswith("conv_01.weight"))].shape[:2]
    sf_levels = tuple(sorted({int(m.group(1)) for k in keys if (m := re.match(r"down_path_1\.(\d+)\.norm\.", k))}))
    cfg = DRCNetConfig(in_ch=in_ch, wf=wf, depth=depth, sf_levels=sf_levels, **{**OFFICIAL_DEFAULTS, **overrides})
    model = DRCNet(cfg)

    translated, unknown = {}, []
    for k, v in state.items():
        ours = translate_key(k, depth)
        (unknown.append(k) if ours is None else translated.__setitem__(ours, v))
    own = model.state_dict()
    missing = sorted(set(own) - set(translated))
    unknown += sorted(set(translated) - set(own))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown keys: {', '.join(unknown[:8])}" + (" ..." if len(unknown) > 8 else ""))
        if missing:
            parts.append(f"missing keys (our names): {', '.join(missing[:8])}" + (" ..." if len(missing) > 8 else ""))
        raise ValueError(f"{source}: does not match the official DRCNet layout; " + "; ".join(parts))
    model.load_state_dict(translated)
    return model.eval()
