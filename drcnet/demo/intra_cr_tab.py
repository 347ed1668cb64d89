"""Intra-CR explorer tab: mixup negatives and the contrastive ratios per VGG layer against lambda."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from drcnet.demo.inputs import resize_max, to_pil
from drcnet.demo.inspect_tab import prepare_small
from drcnet.demo.messages import DemoError
from drcnet.demo.settings import InputSettings
from drcnet.demo.figures import plt, fig_to_image, labelled
import torch

from drcnet.serve.imageio import load_image
from drcnet.train.losses import INTRA_LAYERS, PAPER_LAMBDAS, mixup_negatives
from drcnet.core.paths import ASSETS



def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).permute(2, 0, 1)[None]


@torch.inference_mode()
def cr_ratios(vgg, x: torch.Tensor, clean: torch.Tensor, negatives: list[torch.Tensor], c=None,
              feats_cache: dict | None = None) -> np.ndarray:
    """Per VGG layer: d_l(X, J) / (sum_k c_k d_l(X, N_k) + eps), the quantity of drcnet.train.losses (tested equal to
    IntraCR.layer_ratios), with VGG features of repeated tensors computed once. vgg: the registry's."""
    cache = feats_cache if feats_cache is not None else {}

    def feats(t):
        k = id(t)
        if k not in cache:
            cache[k] = (t, vgg(t))     # keep t alive so its id stays unique
        return cache[k][1]
    c = c if c is not None else [1.0] * len(negatives)
    fx, fj = feats(x), feats(clean)
    fn = [feats(n) for n in negatives]
    out = []
    for l in range(len(fx)):
        pos = (fx[l] - fj[l]).abs().mean()
        neg = sum(ck * (fx[l] - f[l]).abs().mean() for ck, f in zip(c, fn))
        out.append(float(pos / (neg + 1e-7)))
    return np.array(out)


@dataclass
class IntraCRResult:
    negatives: list[tuple[Image.Image, str]]    # gallery: the paper's three negatives and the slider's one
    plot: Image.Image
    table: list[list]                           # rows for a Dataframe
    headers: list[str]


LAMBDA_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def other_example(task: str, shape, seed: int = 1) -> np.ndarray:
    """A different image, degraded the same way: the Extra-CR negative."""
    path = ASSETS / "extra_cr_negative.png"
    if path.is_file():
        rgb = load_image(path).rgb
    else:                                        # a fallback picture that needs no file
        from skimage import data as skdata
        rgb = skdata.coffee().astype(np.float32) / 255.0
    img = Image.fromarray(np.round(rgb * 255).astype(np.uint8)).resize((shape[1], shape[0]), Image.LANCZOS)
    from drcnet.data.degrade import degrade
    rng = np.random.default_rng(seed)
    degraded, _ = degrade(np.asarray(img, np.float32) / 255.0, task, rng,
                          **InputSettings().degradation(task))
    return np.clip(degraded, 0, 1).astype(np.float32)


def intra_cr(registry, image, task: str, lam: float = 0.95,
             settings: InputSettings = InputSettings(synthesize=True)) -> IntraCRResult:
    """Negatives N = lambda I + (1 - lambda) J and the Intra-CR ratio per VGG layer against lambda for the
    restored output, the degraded input and the clean image; Extra-CR (another image's degraded version as the
    negative) beside it. Needs a clean reference (synthetic degradation or an uploaded reference)."""
    prepared = prepare_small(registry, image, task, settings)
    if prepared.clean is None:
        raise DemoError("The Intra-CR explorer needs a (degraded, clean) pair: tick 'degrade a clean photo "
                        "first' or give a clean reference image.")
    restorer = registry.model_for(task)
    with registry.lock(task):
        restored = restorer.restore(prepared.degraded)
    lam = float(lam)
    if not 0 <= lam <= 1:
        raise DemoError(f"lambda must lie in [0, 1], got {lam}")
    shown = _negatives_gallery(prepared.degraded, prepared.clean, lam)
    # VGG curves at cr_max_side
    small = [resize_max(a, registry.limits.cr_max_side) for a in (prepared.degraded, prepared.clean, restored)]
    It, Jt, Xt = (to_tensor(a) for a in small)
    subjects = {"restored X": Xt, "degraded I": It, "clean J": Jt}
    cache: dict = {}
    curves = _cr_curves(registry.vgg(), subjects, It, Jt, cache)
    other = to_tensor(other_example(task, small[0].shape))
    table, headers = _cr_table(registry.vgg(), subjects, Jt, other, cache)
    return IntraCRResult(shown, _cr_figure(curves, table, list(subjects), lam), table, headers)


def _negatives_gallery(I: np.ndarray, J: np.ndarray, lam: float) -> list[tuple[Image.Image, str]]:
    """What the user sees at full inspector size; captions drawn under each picture (the gallery's own captions
    sat over the negatives and were cut off)."""
    captions = [f"N, lambda = {l:g}" for l in PAPER_LAMBDAS] + [f"N, slider's lambda = {lam:g}"]
    return [(labelled(to_pil(n), c), c) for c, n in zip(captions, mixup_negatives(I, J, (*PAPER_LAMBDAS, lam)))]


def _cr_curves(vgg, subjects: dict, It, Jt, cache: dict) -> dict[str, np.ndarray]:
    negs = {l: n for l, n in zip(LAMBDA_GRID, mixup_negatives(It, Jt, LAMBDA_GRID))}
    return {name: np.array([cr_ratios(vgg, x, Jt, [negs[l]], feats_cache=cache) for l in LAMBDA_GRID])
            for name, x in subjects.items()}


def _cr_table(vgg, subjects: dict, Jt, other, cache: dict) -> tuple[list[list], list[str]]:
    from drcnet.train.losses import INTRA_WEIGHTS
    It = subjects["degraded I"]
    paper_negs = mixup_negatives(It, Jt, PAPER_LAMBDAS)
    table, headers = [], ["output", "loss", *INTRA_LAYERS, "weighted sum"]
    w = np.array(INTRA_WEIGHTS)
    for name, x in subjects.items():
        intra = cr_ratios(vgg, x, Jt, paper_negs, c=PAPER_LAMBDAS, feats_cache=cache)
        extra = cr_ratios(vgg, x, Jt, [other], feats_cache=cache)
        table.append([name, "Intra-CR (1, 0.95, 0.9)", *np.round(intra, 4), round(float(w @ intra), 4)])
        table.append([name, "Extra-CR (other image)", *np.round(extra, 4), round(float(w @ extra), 4)])
    return table, headers


def _cr_figure(curves: dict, table: list[list], names: list[str], lam: float) -> Image.Image:
    fig, axes = plt().subplots(1, len(INTRA_LAYERS) + 1, figsize=(15, 3.6), dpi=80,
                               gridspec_kw={"width_ratios": [1] * len(INTRA_LAYERS) + [1.1]})
    styles = {"restored X": "o-", "degraded I": "s--", "clean J": "^:"}
    for l, layer in enumerate(INTRA_LAYERS):
        a = axes[l]
        for name, ys in curves.items():
            a.plot(LAMBDA_GRID, np.maximum(ys[:, l], 1e-4), styles[name], label=name, ms=4)
        for pl in PAPER_LAMBDAS:
            a.axvline(pl, color="grey", lw=0.6, ls=":")
        a.axvline(lam, color="C3", lw=1.0)
        a.set_yscale("log")
        a.set_title(f"{layer}: d(X,J) / d(X,N_lambda)", fontsize=9)
        a.set_xlabel("lambda")
    axes[0].legend(fontsize=8)
    a = axes[-1]
    xs = np.arange(len(names))
    intra_sum = [row[-1] for row in table[0::2]]
    extra_sum = [row[-1] for row in table[1::2]]
    a.bar(xs - 0.2, np.maximum(intra_sum, 1e-4), 0.4, label="Intra-CR")
    a.bar(xs + 0.2, np.maximum(extra_sum, 1e-4), 0.4, label="Extra-CR")
    a.set_xticks(xs, names, fontsize=8)
    a.set_yscale("log")
    a.set_title("weighted CR term\n(lower = closer to J\nthan to the negatives)", fontsize=9)
    a.legend(fontsize=8)
    fig.tight_layout()
    return fig_to_image(fig)
