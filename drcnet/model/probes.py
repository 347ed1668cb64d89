"""Feature probes: what every DFR block saw and did during a forward pass, as small numpy maps.

    with FeatureProbe(model, channel=5) as probe:
        model(x)
    maps = probe.maps[(1, 0)]          # stage 1, level 0
    maps.response, maps.mask, maps.coverage, maps.energy.pca ...

Forward hooks sit on the block's named submodules (see drcnet/model/dfr.py). Maps are summarised the moment they
are produced, so no activation tensor outlives its forward. A plain forward records the first batch item; when
several forwards run inside one probe, each block keeps the maps of the LAST forward.

Tiled passes (the engine's restore(image, probe=probe)) tell the probe where every tile of a batch sits
(place()); every block's maps are then stitched at the image's resolution from all the tiles, blended with the
tiles' own blend weights: the maps of the very pass that made the output. The image-size maps are built when
`maps` is read, once, not after every batch (a large photo is many batches). A stitched mask is the blend of the
tiles' binary masks (fractions only where tiles overlap); its coverage is its mean. Stitching keeps channel
means and the chosen channel; a PCA needs one feature space, so it is off for stitched maps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from drcnet.model.dfr import ThresholdMask

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
MASK_FIELDS = ("response", "mask")     # one-channel maps; what a block outside full_blocks keeps
HOOKED = {
    "response": "spatial.filter.response",
    "mask": "spatial.filter.mask",
    "spatial": "spatial.filter",
    "energy": "energy.weights",
    "identity": "identity",
}


PARTS = ("mean", "channel")           # a multi-channel field's channel mean and its chosen channel


def map_parts(field: str, x: torch.Tensor, channel: int) -> dict[str, torch.Tensor]:
    """A hooked output (B, C, h, w) as what a stitched map keeps of it: {"map": (B, h, w)} for M_sr and the mask,
    {"mean": ..., "channel": ...} for the others (the chosen channel modulo C)."""
    if field in MASK_FIELDS:
        return {"map": x[:, 0]}
    return {"mean": x.mean(dim=1), "channel": x[:, channel % x.shape[1]]}


def hooked_branches(block) -> list[tuple[str, nn.Module]]:
    """(field, submodule) of HOOKED for the branches this block has (an ablation variant lacks some)."""
    found = [(field, submodule(block, path)) for field, path in HOOKED.items()]
    return [(field, module) for field, module in found if module is not None]


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


class MapsOutput(nn.Module):
    """The model's forward at a threshold given as an input, returning every DFR block's maps with the image:
    (out1, out2, *maps), the maps in the order of `names` ((stage, level), field, part), each (B, h, w) float32
    as map_parts keeps them. It is what the inspector's compiled graph computes (drcnet/serve/compiled.py): a
    graph runs no Python hooks, so the maps a FeatureProbe's hooks would take become outputs, and t, which a
    graph would bake in as a constant, an input (a 0-d tensor). Hooks inside forward are plain Python, so
    torch.export traces through them; eagerly it is the model plus the probe's arithmetic."""

    def __init__(self, model: nn.Module, channel: int = 0):
        super().__init__()
        self.model, self.channel = model, channel
        self.names: list[tuple[tuple[int, int], str, str]] = []
        self.channels: dict[tuple[int, int], int] = {}        # a block's output channels (BlockMaps.channels)
        for stage, level, block in model.dfr_blocks():
            key = (stage, level)
            self.channels[key] = block.c
            for field, module in self._hooked(block):
                self.names += [(key, field, part) for part in (("map",) if field in MASK_FIELDS else PARTS)]

    @property
    def cfg(self):
        return self.model.cfg

    @staticmethod
    def _hooked(block):
        """(field, module) of every map a block has: its hooked branches, and the block itself ("fused")."""
        return hooked_branches(block) + [("fused", block)]

    def forward(self, x: torch.Tensor, t: torch.Tensor):
        outputs, hooks = {}, Hooks()
        for stage, level, block in self.model.dfr_blocks():
            for field, module in self._hooked(block):
                hooks.add(module, lambda m, i, o, k=((stage, level), field): outputs.__setitem__(k, o))
        masks = [m for m in self.model.modules() if isinstance(m, ThresholdMask)]
        trained = [m.t for m in masks]
        try:
            for m in masks:
                m.t = t
            out1, out2 = self.model(x)
        finally:
            hooks.remove()
            for m, t0 in zip(masks, trained):
                m.t = t0
        parts = {}
        for (key, field), o in outputs.items():
            for part, value in map_parts(field, o.float(), self.channel).items():
                parts[(key, field, part)] = value
        return (out1, out2, *(parts[name] for name in self.names))


class FeatureProbe:
    """Context manager that records BlockMaps for every DFR block of `model` on each forward."""

    def __init__(self, model, channel: int = 0, pca: bool = True, full_blocks=None):
        """full_blocks: the (stage, level) keys whose every map is recorded; the other blocks keep only M_sr and
        its mask (what an overview of all blocks draws: recording and stitching every map of eight blocks was
        a tenth of the inspector's time). None: every block in full."""
        self.model, self.channel, self.pca = model, channel, pca
        self.full_blocks = None if full_blocks is None else set(full_blocks)
        self._maps: dict[tuple[int, int], BlockMaps] = {}
        self._unstitched: dict[tuple[int, int], int] = {}     # block key -> channels, stitched when maps is read
        self._pending: dict[tuple[int, int], dict] = {}
        self._hooks = Hooks()
        self._generator = torch.Generator().manual_seed(0)
        self._stitch: Stitch | None = None

    def __enter__(self) -> "FeatureProbe":
        for stage, level, block in self.model.dfr_blocks():
            key = (stage, level)
            for field, module in hooked_branches(block):
                if self.in_full(key) or field in MASK_FIELDS:
                    self._hooks.add(module, self._recorder(key, field))
            # the block's own hook fires after its submodules': it completes this forward's record
            self._hooks.add(block, self._finisher(key))
        return self

    @property
    def maps(self) -> dict[tuple[int, int], BlockMaps]:
        """(stage, level) -> BlockMaps of the last forward, or of the whole tiled pass (stitched now)."""
        for key, channels in self._unstitched.items():
            self._maps[key] = self._stitch.block_maps(key, channels)
        self._unstitched.clear()
        return self._maps

    @property
    def stitching(self) -> bool:
        """Whether this pass is tiled (place() was called): its maps are stitched at the image's size."""
        return self._stitch is not None

    def in_full(self, key) -> bool:
        return self.full_blocks is None or key in self.full_blocks

    def __exit__(self, *exc) -> None:
        self._hooks.remove()
        self._pending.clear()

    def clear(self) -> None:
        """Forget the recorded maps (hooks stay in place)."""
        self._maps.clear()
        self._unstitched.clear()
        self._pending.clear()
        self._stitch = None

    def place(self, tiles, image_size: tuple[int, int]) -> None:
        """The next forward is a batch of these tiles (drcnet.serve.tiling.Tile: y, x, h, w, weight) of an
        image of image_size: stitch every block's maps from them (the engine calls this before each batch)."""
        if self._stitch is None or self._stitch.size != tuple(image_size):
            self._maps.clear()
            self._unstitched.clear()
            self._stitch = Stitch(tuple(image_size), self.channel)
        self._stitch.tiles = list(tiles)
        self._stitch.batch += 1

    def take(self, maps_output: MapsOutput, maps) -> None:
        """The maps a MapsOutput (the inspector's compiled graph) returned for the batch just placed, in place of
        the hooks: every block's M_sr and mask, and the other fields of full_blocks."""
        if not self.stitching or maps_output.channel != self.channel:
            raise ValueError("a graph's maps are taken in a tiled pass (place() first), for the probe's channel")
        fields = {}
        for (key, field, part), m in zip(maps_output.names, maps):
            if self.in_full(key) or field in MASK_FIELDS:
                fields.setdefault((key, field), {})[part] = m
        for (key, field), parts in fields.items():
            self._stitch.add_parts(key, field, parts)
        self._unstitched.update(maps_output.channels)

    def _recorder(self, key, field):
        def hook(module, inputs, output):
            if self._stitch is not None:
                self._stitch.add(key, field, output)
            else:
                self._pending.setdefault(key, {})[field] = self.summarise(output, field)
        return hook

    def _finisher(self, key):
        def hook(module, inputs, output):
            full = self.in_full(key)
            if self._stitch is not None:
                if full:
                    self._stitch.add(key, "fused", output)
                self._unstitched[key] = output.shape[1]
                return
            found = self._pending.pop(key, {})
            mask = found.get("mask")
            _, c, h, w = output.shape
            self._maps[key] = BlockMaps(
                response=found.get("response"), mask=mask,
                coverage=None if mask is None else float(mask.mean()),
                spatial=found.get("spatial"), energy=found.get("energy"), identity=found.get("identity"),
                fused=self.summarise(output, "fused") if full else None, height=h, width=w, channels=c)
        return hook

    @torch.no_grad()
    def summarise(self, output: torch.Tensor, field: str):
        """First batch item -> a 2-D array for one-channel maps, otherwise a Summary."""
        x = output[0].detach().float().cpu()
        if x.shape[0] == 1 or field in ("response", "mask"):
            return x[0].numpy().copy()
        return Summary(mean=x.mean(dim=0).numpy(), channel=x[self.channel % x.shape[0]].numpy().copy(),
                       pca=pca_projection(x, self._generator) if self.pca else None)


class Stitch:
    """The maps of a tiled pass, blended at the image's resolution (see the module docstring)."""

    def __init__(self, size: tuple[int, int], channel: int):
        self.size, self.channel = size, channel
        self.tiles, self.batch = [], 0            # the tiles of the current batch, and its number
        self.sums: dict[tuple, np.ndarray] = {}      # (block key, field, part) -> HxW weighted sum
        self.weights: dict[tuple, np.ndarray] = {}   # block key -> HxW sum of weights
        self.counted: set[tuple] = set()              # (block key, batch number) whose weights are added

    @torch.no_grad()
    def add(self, key, field: str, output: torch.Tensor) -> None:
        """One hooked output (a batch of tiles at the block's level) into the image-size sums."""
        self.add_parts(key, field, map_parts(field, output.detach().float(), self.channel))

    @torch.no_grad()
    def add_parts(self, key, field: str, parts: dict[str, torch.Tensor]) -> None:
        """One field's parts (map_parts: a batch of HxW maps each) into the image-size sums."""
        level = key[1]
        for part, maps in parts.items():
            total = self.sums.setdefault((key, field, part), np.zeros(self.size, np.float32))
            for tile, level_map in zip(self.tiles, maps.cpu().numpy()):
                total[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w] += to_tile(level_map, level, tile) * tile.weight
        if (key, self.batch) not in self.counted:          # once per block and batch, whatever the fields
            self.counted.add((key, self.batch))
            weights = self.weights.setdefault(key, np.zeros(self.size, np.float32))
            for tile in self.tiles:
                weights[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w] += tile.weight

    def field(self, key, field: str, part: str = "map") -> np.ndarray | None:
        total = self.sums.get((key, field, part))
        return None if total is None else total / np.maximum(self.weights[key], 1e-12)

    def summary(self, key, field: str) -> Summary | None:
        mean = self.field(key, field, "mean")
        return None if mean is None else Summary(mean=mean, channel=self.field(key, field, "channel"), pca=None)

    def block_maps(self, key, channels: int) -> BlockMaps:
        mask = self.field(key, "mask")
        h, w = self.size
        return BlockMaps(response=self.field(key, "response"), mask=mask,
                         coverage=None if mask is None else float(mask.mean()),
                         spatial=self.summary(key, "spatial"), energy=self.summary(key, "energy"),
                         identity=self.summary(key, "identity"), fused=self.summary(key, "fused"),
                         height=-(-h // 2 ** key[1]), width=-(-w // 2 ** key[1]), channels=channels)


def to_tile(level_map: np.ndarray, level: int, tile) -> np.ndarray:
    """A block's map of one tile (at 1/2^level of the tile, padded to the model's multiple) at the tile's pixels:
    each value repeated over the 2^level x 2^level pixels it stands for, cropped to the tile."""
    f = 2 ** level
    if f > 1:
        level_map = np.repeat(np.repeat(level_map, f, axis=0), f, axis=1)
    return level_map[:tile.h, :tile.w]
