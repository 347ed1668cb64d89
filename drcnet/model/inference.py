"""How a checkpoint is meant to be run: its inference spec, one explicit fact stored in the checkpoint.

    spec = InferenceSpec.from_meta(read_metadata("checkpoints/denoise.safetensors"))
    spec.tile, spec.overlap, spec.statistics, spec.batch      # 176, 8, "matched", 9

The spec lives in the checkpoint's metadata under "inference" (as timm attaches a pretrained config to its
models) and is written by save_checkpoint from the training patch, so that nothing downstream has to guess how
a model wants its input cut. Why the tiling matters at all: every DFR block normalises with statistics taken
over what it sees (its region statistics and SimAM), so a lite model trained on 128 px patches and run over a
whole 512 px photo paints colour blocks over smooth regions. Tiles close to the training patch keep those
statistics in the range the weights learned ("matched"); "whole" is the paper's single pass over the image.

The tile of a patch (tile_for_patch) was chosen by measurement (docs/design.md, "Tile size and overlap"):
a little larger than the patch and overlapping by little wastes far fewer pixels than 128 px tiles overlapping
by 32 px (a 512 px photo: 9 tiles of 176 px, 1.06x its pixels, against 25 tiles of 128 px, 1.56x), passes the
safety gate and keeps the test scores.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

INFERENCE_KEY = "inference"          # the metadata key of the spec
STATISTICS = ("matched", "whole")
TILE_SCALE = 1.375                   # tile = this x the training patch, rounded to 8 px (128 -> 176)
TILE_OVERLAP = 8                     # px; the raised-cosine blend needs only a few pixels to hide a seam
TILE_BATCH = 9                       # tiles per forward: a 512 px photo in 176 px tiles is exactly one batch


def tile_for_patch(patch: int) -> int:
    return int(round(patch * TILE_SCALE / 8)) * 8


@dataclass(frozen=True)
class InferenceSpec:
    statistics: str = "whole"        # "matched": tiles of about the training patch; "whole": one pass (the paper)
    tile: int = 0                    # px, the side of the tiles of "matched" (0 with "whole")
    overlap: int = 0                 # px between neighbouring tiles
    batch: int = TILE_BATCH          # tiles per forward (and the batch of the compiled graph)

    def __post_init__(self):
        if self.statistics not in STATISTICS:
            raise ValueError(f"statistics must be one of {STATISTICS}, got {self.statistics!r}")
        if self.statistics == "matched" and self.tile <= 0:
            raise ValueError("matched statistics need a tile size")
        if self.tile and not 0 <= 2 * self.overlap <= self.tile:
            raise ValueError(f"overlap ({self.overlap}) must lie in 0 .. half the tile ({self.tile})")
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")

    @classmethod
    def for_patch(cls, patch: int | None) -> "InferenceSpec":
        """The spec of a model trained on `patch` px patches; "whole" when the patch is unknown."""
        if not patch:
            return cls()
        return cls("matched", tile_for_patch(int(patch)), TILE_OVERLAP)

    @classmethod
    def from_meta(cls, meta: dict | None) -> "InferenceSpec":
        """The checkpoint's spec. A checkpoint written before the key existed gets the spec of its training
        patch (the one place that still reads training.patch for this)."""
        meta = meta or {}
        spec = meta.get(INFERENCE_KEY)
        if isinstance(spec, dict) and spec:
            return cls(**spec)
        return cls.for_patch((meta.get("training") or {}).get("patch"))

    def to_meta(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for the app's facts and the CLI: where the DFR statistics were taken."""
        if self.statistics == "matched":
            return f"DFR statistics matched to training: {self.tile} px tiles, {self.overlap} px overlap"
        return "DFR statistics over the whole image (the paper's)"
