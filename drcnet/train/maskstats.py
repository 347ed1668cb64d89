"""DFR mask statistics of a validation forward: is the learned mask M = [M_sr >= t] still a mask?

Each DFR block's spatial response M_sr (eq 3) is a sigmoid map; the block normalises the region where it
reaches the threshold t apart from the rest. If training pushes M_sr below t everywhere (or above it), the
region normalisation degenerates into a plain one. The trainer logs, per block and at every validation:

    p1, p50, p99    percentiles of M_sr over the validation crops' pixels
    coverage        the fraction of pixels in the mask the block used (the mean of ThresholdMask's output)
    margin99        logit(p99) - logit(t): how far (in logits) the top of the response is above the threshold
    quantile        only for a model that sets t per image at a quantile of M_sr (DRCNetConfig.mask_quantile):
                    that quantile; t is then the pooled pixels' quantile, the t such masks use on average

The alignment of M_sr with the degradation (its AUC, docs/science.md) needs truth maps, which the validation crops
do not have; the relay measures it for each leg's weights before and after (drcnet/ops/relay.py).

    with MaskStats(model) as stats:
        model(batch)                        # any number of forwards: the values of all of them are pooled
    stats.summary()                         # {"stage1.level0": {"t": .., "p1": .., ...}, ...}
"""
from __future__ import annotations

import math

import numpy as np

from drcnet.model.probes import HOOKED, Hooks, submodule

EPS = 1e-6          # clamp for logit(p) at p = 0 or 1


def logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


class MaskStats:
    """Forward hooks on every DFR block's spatial response and mask (probes.HOOKED); blocks without a spatial
    filter (ablation variants) are left out."""

    def __init__(self, model):
        self.model = model
        self.values: dict[str, list[np.ndarray]] = {}
        self.masked: dict[str, list[float]] = {}      # per forward: [pixels in the mask, pixels]
        self.masks: dict[str, object] = {}
        self._hooks = Hooks()

    def __enter__(self) -> "MaskStats":
        for stage, level, block in self.model.dfr_blocks():
            response, mask = submodule(block, HOOKED["response"]), submodule(block, HOOKED["mask"])
            if response is None or mask is None:
                continue
            name = f"stage{stage}.level{level}"
            self.values[name], self.masked[name], self.masks[name] = [], [0.0, 0.0], mask
            self._hooks.add(response, self._recorder(name))
            self._hooks.add(mask, self._counter(name))
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.remove()

    def _recorder(self, name: str):
        def hook(module, inputs, output):
            self.values[name].append(output.detach().float().flatten().cpu().numpy())
        return hook

    def _counter(self, name: str):
        def hook(module, inputs, output):
            self.masked[name][0] += float(output.detach().float().sum())
            self.masked[name][1] += output.numel()
        return hook

    def summary(self) -> dict:
        out = {}
        for name, chunks in self.values.items():
            if not chunks:
                continue
            values, quantile = np.concatenate(chunks), getattr(self.masks[name], "quantile", None)
            t = float(self.masks[name].t) if quantile is None else round(float(np.quantile(values, quantile)), 5)
            p1, p50, p99 = (float(v) for v in np.percentile(values, [1, 50, 99]))
            inside, pixels = self.masked[name]
            out[name] = {"t": t, "p1": round(p1, 5), "p50": round(p50, 5), "p99": round(p99, 5),
                         "coverage": round(inside / max(pixels, 1), 5), "margin99": round(logit(p99) - logit(t), 4)}
            if quantile is not None:
                out[name]["quantile"] = quantile
        return out
