"""The values every handler shares: the six input settings (their defaults written here and nowhere else) and the
sizes the handlers work at (Limits, made when the registry is made, not at import)."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

from drcnet.demo.messages import DemoError


@dataclass(frozen=True)
class InputSettings:
    """How the input is made: an optional clean reference, or a synthetic degradation of a clean photo."""
    reference: str | None = None
    synthesize: bool = False
    sigma: float = 25
    rain: str = "light"
    blur_size: int = 21
    seed: int = 0

    def degradation(self, task: str) -> dict:
        """degrade()'s keyword arguments for this task's synthetic degradation, validated."""
        if task == "denoise":
            if not 0 <= float(self.sigma) <= 100:
                raise DemoError(f"noise sigma must lie in 0..100 (0-255 units), got {self.sigma}")
            return {"sigma": float(self.sigma)}
        if task == "derain":
            from drcnet.data.degrade import RAIN_PRESETS
            if self.rain not in RAIN_PRESETS:
                raise DemoError(f"rain must be one of {sorted(RAIN_PRESETS)}, got {self.rain!r}")
            return {"setting": self.rain}
        from drcnet.data.degrade import KERNEL_SIZES
        size = int(self.blur_size) | 1
        return {"size": min(max(size, KERNEL_SIZES[0]), KERNEL_SIZES[1])}

    def cache_key(self) -> tuple:
        from drcnet.demo.inputs import mtime
        return (str(self.reference), mtime(self.reference), bool(self.synthesize), float(self.sigma), self.rain,
                int(self.blur_size), int(self.seed))

    def as_row(self) -> list:
        """[reference, synthesize, sigma, rain, blur_size, seed]: the controls' values."""
        return [getattr(self, f.name) for f in fields(self)]

    @classmethod
    def from_example(cls, entry: dict, reference: str | None = None) -> "InputSettings":
        """An examples.json entry: its own keys, else how a committed degraded file was made, else the defaults."""
        made, default = entry.get("settings") or {}, cls()
        return cls(reference, bool(entry.get("synthesize", False)),
                   entry.get("sigma", made.get("sigma", default.sigma)),
                   entry.get("rain", made.get("setting", default.rain)),
                   entry.get("blur_size", made.get("size", default.blur_size)), entry.get("seed", default.seed))


@dataclass(frozen=True)
class Limits:
    """Sizes the handlers work at."""
    max_pixels: int = 40_000_000         # decompression-bomb guard for uploads (40 MP)
    inspect_max_side: int = 512          # the inspector, Intra-CR explorer and Compare work at most this size
    tile: int = 512                      # Restore: images up to this size run whole, larger are tiled
    tile_overlap: int = 32
    cr_max_side: int = 192               # VGG features for the Intra-CR curves (many forwards): smaller still

    @classmethod
    def from_env(cls) -> "Limits":
        return cls(tile=int(os.environ.get("DRCNET_TILE", cls.tile)))
