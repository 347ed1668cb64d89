"""Where the inspector's photo is degraded, when that is known: the truth map M_sr is compared with.

The maps are drcnet.eval.alignment's (docs/science.md), so the page's AUC means what the science page's does:

- derain: the rain layer R itself, replayed from the generator's seed and setting (alignment.rain_with_layer).
  Known for the app's synthetic rain and for the premade rain examples (their seed fills the controls); the
  replay is trusted only if it gives back the degraded picture (up to the 8-bit rounding of a saved example).
- deblur: |blurred - clean| in luminance, smoothed (alignment.blur_truth): known whenever a clean reference is.
- denoise: unknown in space. The app's noise has one sigma everywhere, so no pixel is more degraded than another;
  the science page uses noise whose sigma varies over the image for that reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drcnet.demo.settings import InputSettings
from drcnet.eval.alignment import blur_truth, rain_with_layer

REPLAY_TOLERANCE = 1.5 / 255      # a saved example is the float rainy picture rounded to 8 bits, its reference too


@dataclass
class Truth:
    """The truth map (H x W, larger = more degraded) and what it is; map None: unknown, `what` says why."""
    map: np.ndarray | None
    what: str

    @property
    def known(self) -> bool:
        return self.map is not None


def degradation_truth(prepared, task: str, settings: InputSettings) -> Truth:
    """The truth map of a prepared input (drcnet.demo.inputs.Prepared), or why there is none."""
    if prepared.clean is None:
        return Truth(None, "unknown: there is no clean reference (degrade a clean photo first, or give one)")
    if task == "denoise":
        sigma = prepared.info.get("sigma")
        if sigma is None:
            return Truth(None, "unknown: how the noise's strength varies over this photo is not known")
        return Truth(None, f"unknown in space: this noise has one sigma ({sigma:g}) everywhere, so no region is "
                           "more degraded than another (docs/science.md measures denoise on noise whose sigma "
                           "varies over the image)")
    if task == "deblur":
        return Truth(blur_truth(prepared.degraded, prepared.clean),
                     "where the blur changed the picture: |blurred - clean| in luminance, 5 x 5 box-smoothed")
    return _replayed_rain(prepared, settings)


def _replayed_rain(prepared, settings: InputSettings) -> Truth:
    """The rain layer, replayed with the generator's seed and setting; unknown if the replay is another picture."""
    setting = prepared.info.get("setting", settings.rain)
    if prepared.info.get("haze"):
        return Truth(None, "unknown: haze veils every pixel alike, on top of the rain layer")
    rng = np.random.default_rng(int(settings.seed))
    rainy, layer = rain_with_layer(np.asarray(prepared.clean, np.float32), rng, setting)
    if rainy.shape != prepared.degraded.shape or np.abs(rainy - prepared.degraded).max() > REPLAY_TOLERANCE:
        return Truth(None, "unknown: the rain layer is known only for the app's own synthetic rain (a clean photo "
                           "degraded here, or a rain example)")
    return Truth(layer, f"the rain layer the generator added ({setting} rain, seed {int(settings.seed)})")
