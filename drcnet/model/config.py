"""DRCNet configuration: one dataclass, named presets and the paper's Table 4 variants.

A checkpoint stores ``asdict(config)`` in its metadata, so a model can always be rebuilt from its file
(the timm habit: checkpoints carry their config).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

# Which branches a DFR block has, per Table 4 of the paper. "base" is the plain block: one 3x3 conv and a
# LeakyReLU. Each further branch owns its own conv, which is how the spec reconciles the table's counts.
VARIANTS: dict[str, dict[str, bool]] = {
    "base": dict(spatial_filter=False, energy_attention=False, identity=False),
    "base+SF": dict(spatial_filter=True, energy_attention=False, identity=False),
    "base+EA": dict(spatial_filter=False, energy_attention=True, identity=False),
    "base+SF+identity": dict(spatial_filter=True, energy_attention=False, identity=True),
    "base+SF+EA": dict(spatial_filter=True, energy_attention=True, identity=False),
    "DFR": dict(spatial_filter=True, energy_attention=True, identity=True),
}

REGION_STATS = ("sample", "official")
T_DEFAULT = 0.75        # the mask threshold t of the paper: the one place that writes it
MIN_REGION = 16         # pixels; a checkpoint written before this field existed loads with it too (design.md)


def check_threshold(t: float) -> float:
    """t as a float, or ValueError when it lies outside [0, 1] (the one range check of the mask threshold)."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"threshold t must lie in [0, 1], got {t}")
    return float(t)


@dataclass
class DRCNetConfig:
    in_ch: int = 3
    wf: int = 64                       # width of the first level; level i has wf * 2**i channels
    depth: int = 4                     # levels per encoder; depth 4 = three down-samplings (spec section 1)
    relu_slope: float = 0.2
    sf_levels: tuple[int, ...] = (0, 1, 2, 3)   # levels whose DFR block has the spatial filter
    t: float = T_DEFAULT               # mask threshold on the spatial response map (paper; code used 0.8)
    delta: float = 1e-6                # SimAM's lambda in eq 8 (paper; code used 1e-4)
    variant: str = "DFR"               # one of VARIANTS (Table 4 ablations)
    region_stats: str = "sample"       # "sample": per-sample region statistics; "official": public code's arithmetic
    norm_eps: float = 1e-5             # eps inside the region standard deviation (InstanceNorm's default)
    min_region: int = MIN_REGION       # a mask region (or its complement) under this many pixels joins the rest:
                                       # our deviation (dfr.ThresholdMask); 0 is the paper's mask

    def __post_init__(self):
        self.sf_levels = tuple(int(i) for i in self.sf_levels)
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {sorted(VARIANTS)}")
        if self.region_stats not in REGION_STATS:
            raise ValueError(f"unknown region_stats {self.region_stats!r}; choose one of {REGION_STATS}")
        if self.wf % 2:
            raise ValueError("wf must be even: the spatial filter splits the channels in half")
        check_threshold(self.t)

    @property
    def branches(self) -> dict[str, bool]:
        return VARIANTS[self.variant]

    @property
    def multiple(self) -> int:
        """Inputs are padded to a multiple of this (one factor 2 per down-sampling)."""
        return 2 ** (self.depth - 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sf_levels"] = list(self.sf_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DRCNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d)


PRESETS: dict[str, DRCNetConfig] = {
    "paper": DRCNetConfig(wf=64),   # 18,975,798 parameters
    "lite": DRCNetConfig(wf=32),    # about 4.7M: what a 2-CPU Space serves in about a second
    "tiny": DRCNetConfig(wf=16),    # about 1.2M: tests and CPU training
}


def make_config(preset: str = "paper", **overrides) -> DRCNetConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[preset], **overrides)
