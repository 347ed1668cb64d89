"""Feature probes: what every DFR block saw and did during a forward pass, as small numpy maps.

    with FeatureProbe(model, channel=5) as probe:
        model(x)
    maps = probe.maps[(1, 0)]          # stage 1, level 0
    maps.response, maps.mask, maps.coverage, maps.energy.pca ...

Forward hooks sit on the block's named submodules (see drcnet/model/dfr.py). Maps are summarised the moment they
are produced (first batch item only), so no activation tensor outlives its forward. When several forwards run
inside one probe (tiled inference runs one per tile), each block keeps the maps of the LAST forward.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PCA_SAMPLE = 4096          # pixels used to fit the PCA basis; the projection itself covers every pixel


@dataclass
class Summary:
    """A multi-channel map as three pictures: channel mean, one chosen channel, 3-component PCA in [0, 1]."""
    mean: np.ndarray                 # HxW
    channel: np.ndarray              # HxW, channel `probe.channel` (modulo the channel count)
    pca: np.ndarray | None           # HxWx3 in [0, 1], or None when the probe was made with pca=False




@dataclass
class BlockMaps:
    response: np.ndarray | None      # M_sr, HxW in [0, 1]
    mask: np.ndarray | None          # the binary mask M, HxW
    coverage: float | None           # mean of the mask: the fraction of pixels in the "degraded" region
    spatial: Summary | None          # spatial-filter output sf
    energy: Summary | None           # energy-attention weights
    identity: Summary | None         # identity branch
    fused: Summary                   # the block's output
    height: int = 0
    width: int = 0
    channels: int = 0                # of the fused output


# The submodules hooked in each block: BlockMaps field -> attribute path inside DFRBlock.
HOOKED = {
    "response": "spatial.filter.response",
    "mask": "spatial.filter.mask",
    "spatial": "spatial.filter",
    "energy": "energy.weights",
    "identity": "identity",
}


def submodule(block, path: str):
    """block.a.b.c, or None where a branch is absent (ablation variant, level outside sf_levels)."""
    module = block
    for name in path.split("."):
        module = getattr(module, name, None)
        if module is None:
            return None
    return module


def pca_projection(features: torch.Tensor, generator: torch.Generator) -> np.ndarray:
    """C x H x W -> H x W x 3: the first three principal components, each stretched to [0, 1].

    The basis comes from an SVD of at most PCA_SAMPLE pixels (cheap for any image size); signs are fixed so
    that each component's largest loading is positive, so colours stay stable from one forward to the next."""
    c, h, w = features.shape
    pixels = features.reshape(c, h * w).T                           # (HW, C)
    idx = torch.randperm(h * w, generator=generator)[:PCA_SAMPLE]
    sample = pixels[idx]
    centre = sample.mean(dim=0)
    _, _, vh = torch.linalg.svd(sample - centre, full_matrices=False)
    basis = vh[:3].T                                                # (C, k), k <= 3
    signs = torch.sign(basis.gather(0, basis.abs().argmax(dim=0, keepdim=True)))
    proj = (pixels - centre) @ (basis * signs)
    if proj.shape[1] < 3:                                           # fewer than 3 channels or pixels
        proj = torch.cat([proj, proj.new_zeros(h * w, 3 - proj.shape[1])], dim=1)
    lo, hi = proj.min(dim=0).values, proj.max(dim=0).values
    proj = (proj - lo) / (hi - lo).clamp_min(1e-12)
    return proj.reshape(h, w, 3).numpy()


class Hooks:
    """The forward hooks one probe has registered: add(module, hook) registers one, remove() takes them all off."""

    def __init__(self):
        self._handles = []

    def add(self, module, hook) -> None:
        self._handles.append(module.register_forward_hook(hook))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class FeatureProbe:
    """Context manager that records BlockMaps for every DFR block of `model` on each forward."""

    def __init__(self, model, channel: int = 0, pca: bool = True):
        self.model, self.channel, self.pca = model, channel, pca
        self.maps: dict[tuple[int, int], BlockMaps] = {}
        self._pending: dict[tuple[int, int], dict] = {}
        self._hooks = Hooks()
        self._generator = torch.Generator().manual_seed(0)

    def __enter__(self) -> "FeatureProbe":
        for stage, level, block in self.model.dfr_blocks():
            key = (stage, level)
            for field, path in HOOKED.items():
                module = submodule(block, path)
                if module is not None:
                    self._hooks.add(module, self._recorder(key, field))
            # the block's own hook fires after its submodules': it completes this forward's record
            self._hooks.add(block, self._finisher(key))
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.remove()
        self._pending.clear()

    def clear(self) -> None:
        """Forget the recorded maps (hooks stay in place)."""
        self.maps.clear()
        self._pending.clear()

    def _recorder(self, key, field):
        def hook(module, inputs, output):
            self._pending.setdefault(key, {})[field] = self.summarise(output, field)
        return hook

    def _finisher(self, key):
        def hook(module, inputs, output):
            found = self._pending.pop(key, {})
            mask = found.get("mask")
            _, c, h, w = output.shape
            self.maps[key] = BlockMaps(
                response=found.get("response"), mask=mask,
                coverage=None if mask is None else float(mask.mean()),
                spatial=found.get("spatial"), energy=found.get("energy"), identity=found.get("identity"),
                fused=self.summarise(output, "fused"), height=h, width=w, channels=c)
        return hook

    @torch.no_grad()
    def summarise(self, output: torch.Tensor, field: str):
        """First batch item -> a 2-D array for one-channel maps, otherwise a Summary."""
        x = output[0].detach().float().cpu()
        if x.shape[0] == 1 or field in ("response", "mask"):
            return x[0].numpy().copy()
        return Summary(mean=x.mean(dim=0).numpy(), channel=x[self.channel % x.shape[0]].numpy().copy(),
                       pca=pca_projection(x, self._generator) if self.pca else None)
