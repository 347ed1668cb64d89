"""Training losses: L1, Intra-class contrastive regularisation (Intra-CR, spec section 4), the ablations, and
L1 + a frequency-domain L1 term (MIMO-UNet's, a project lever for deblurring; not the paper's loss).

For one output X with clean target J and degraded input I:

    L = mean|X - J| + alpha * sum_l w_l * d_l(X, J) / (sum_k c_k * d_l(X, N_k) + 1e-7)
    N_k = lambda_k * I + (1 - lambda_k) * J          (mixup negatives, the public code's form)
    d_l(A, B) = mean |phi_l(A) - phi_l(B)|           (phi_l: frozen VGG19; no gradient through B)

The trainer applies a loss to both DRCNet outputs and sums them.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from drcnet.train.vgg import VGG19Features

PAPER_LAMBDAS = (1.00, 0.95, 0.90)
INTRA_LAYERS = ("relu1_1", "relu2_1", "relu3_1")
INTRA_WEIGHTS = (1 / 16, 1 / 8, 1 / 4)
AECR_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
AECR_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
EPS = 1e-7


def mixup_negatives(degraded, clean, lambdas: Sequence[float]) -> list[torch.Tensor]:
    """N_k = lambda_k * I + (1 - lambda_k) * J: lambda = 1 is the degraded input, smaller lambdas move toward J."""
    return [lam * degraded + (1.0 - lam) * clean for lam in lambdas]


class ContrastiveRegularisation(nn.Module):
    """sum_l w_l * d_l(X, positive) / (sum_k c_k * d_l(X, negative_k) + eps), the ratio shared by all CR forms.

    Subclasses only say what the negatives are, so Intra-CR, Extra-CR and AECR's CR are one computation."""

    def __init__(self, layers: Sequence[str], layer_weights: Sequence[float], vgg: VGG19Features | None = None,
                 vgg_weights=None):
        super().__init__()
        if len(layers) != len(layer_weights):
            raise ValueError("one weight per VGG layer")
        self.vgg = vgg if vgg is not None else VGG19Features(layers, weights=vgg_weights)
        if tuple(self.vgg.layers) != tuple(layers):
            raise ValueError(f"the VGG extractor gives {self.vgg.layers}, the loss wants {tuple(layers)}")
        self.layer_weights = tuple(float(w) for w in layer_weights)

    def negatives(self, clean, degraded) -> tuple[list[torch.Tensor], Sequence[float]]:
        raise NotImplementedError

    def layer_ratios(self, x, clean, degraded) -> torch.Tensor:
        """The unweighted ratio d_l(X, J) / (sum_k c_k d_l(X, N_k) + eps) per VGG layer, shape (L,)."""
        others, c = self._reference_features(clean, degraded)
        fx = self.vgg(x)
        n = x.shape[0]
        ratios = []
        for f, g in zip(fx, others):
            pos = (f - g[:n]).abs().mean()
            neg = sum(ck * (f - g[(k + 1) * n:(k + 2) * n]).abs().mean() for k, ck in enumerate(c))
            ratios.append(pos / (neg + EPS))
        return torch.stack(ratios)

    def _reference_features(self, clean, degraded):
        """VGG features of the positive and the negatives, without gradient (none flows from them).

        The trainer applies the loss to out2 and then out1 with the same (clean, degraded) pair, so the last
        pair's features are kept and reused: a one-entry memo keyed on the tensors and their in-place versions.
        """
        key = (clean._version, degraded._version, torch.is_autocast_enabled(clean.device.type))
        memo = getattr(self, "_memo", None)
        if memo is not None and memo[0] is clean and memo[1] is degraded and memo[2] == key:
            return memo[3]
        negatives, c = self.negatives(clean, degraded)
        with torch.no_grad():
            others = self.vgg(torch.cat([clean, *negatives], dim=0))
        self._memo = (clean, degraded, key, (others, c))
        return others, c

    def forward(self, x, clean, degraded):
        w = torch.tensor(self.layer_weights, device=x.device, dtype=torch.float32)
        return (w * self.layer_ratios(x, clean, degraded).float()).sum()


class IntraCR(ContrastiveRegularisation):
    """Negatives are mixups of the same image's degraded input and its clean target (the paper's idea)."""

    def __init__(self, lambdas=PAPER_LAMBDAS, weights=None, layers=INTRA_LAYERS, layer_weights=INTRA_WEIGHTS,
                 **kw):
        super().__init__(layers, layer_weights, **kw)
        self.lambdas = tuple(float(v) for v in lambdas)
        self.c = tuple(float(v) for v in (weights if weights is not None else lambdas))   # c_k = lambda_k
        if len(self.c) != len(self.lambdas):
            raise ValueError("one weight c_k per lambda_k")

    def negatives(self, clean, degraded):
        return mixup_negatives(degraded, clean, self.lambdas), self.c


class ExtraCR(ContrastiveRegularisation):
    """The paper's comparison: negatives are other images of the batch (the degraded batch rolled by one).
    With batch 1 the roll is the identity and this equals AECR's single-negative CR."""

    def __init__(self, layers=INTRA_LAYERS, layer_weights=INTRA_WEIGHTS, **kw):
        super().__init__(layers, layer_weights, **kw)

    def negatives(self, clean, degraded):
        return [torch.roll(degraded, shifts=1, dims=0)], (1.0,)


class AECRContrast(IntraCR):
    """AECR-Net's original CR: the single lambda = 1 negative (the degraded input), relu1_1..relu5_1."""

    def __init__(self, layers=AECR_LAYERS, layer_weights=AECR_WEIGHTS, **kw):
        super().__init__(lambdas=(1.0,), layers=layers, layer_weights=layer_weights, **kw)


class RestorationLoss(nn.Module):
    """mean|X - J| + alpha * CR(X, J, I), for one output; `cr=None` is plain L1."""

    def __init__(self, cr: ContrastiveRegularisation | None = None, alpha: float = 0.04):
        super().__init__()
        self.cr, self.alpha = cr, float(alpha)

    def forward(self, x, clean, degraded):
        loss = (x - clean).abs().mean()
        if self.cr is not None and self.alpha:
            loss = loss + self.alpha * self.cr(x, clean, degraded)
        return loss


class IntraCRLoss(RestorationLoss):
    """The paper's loss for one output: L1 + alpha * Intra-CR (lambdas, c_k, layers, layer weights configurable)."""

    def __init__(self, alpha: float = 0.04, **cr_options):
        super().__init__(IntraCR(**cr_options), alpha)


class ExtraCRLoss(RestorationLoss):
    def __init__(self, alpha: float = 0.04, **cr_options):
        super().__init__(ExtraCR(**cr_options), alpha)


class AECRLoss(RestorationLoss):
    def __init__(self, alpha: float = 0.04, **cr_options):
        super().__init__(AECRContrast(**cr_options), alpha)


class L1Loss(RestorationLoss):
    """L1 alone (no contrastive term): the ablation's baseline, and deblurring's loss (checkpoints/deblur.md)."""

    def __init__(self):
        super().__init__(None, 0.0)


class FrequencyL1(nn.Module):
    """mean |rfft2(X) - rfft2(J)| over the real and imaginary parts, MIMO-UNet's frequency reconstruction term
    (Cho et al. 2021): its torch.stack([re, im], -1) is view_as_real here.

    Pixel L1 lets a slightly smoothed output cost little (a blur's missing edges are a small share of the pixels);
    in the spectrum each missing high frequency is a coefficient of its own. Unnormalised ("backward") as in
    MIMO-UNet, so the term grows with the patch side (white errors: about sqrt(H*W / 2) times their pixel L1).
    Cast to float32 explicitly rather than left to autocast's fp32 list: torch.fft has no bfloat16 on the CPU,
    so a bf16 output fails wherever autocast is off, and a coefficient summing H*W pixels wants float32 anyway."""

    def forward(self, x, clean):
        with torch.autocast(x.device.type, enabled=False):
            diff = torch.fft.rfft2(x.float() - clean.float(), dim=(-2, -1))    # linear: FFT(X) - FFT(J)
        return torch.view_as_real(diff).abs().mean()


class L1FrequencyLoss(L1Loss):
    """L1 + w * FrequencyL1 for one output ("l1+fft"). MIMO-UNet's form and weight (w = 0.1), but a deviation
    from the DRCNet paper, which trains with L1 + Intra-CR: a lever for deblur's plateau (issue 38). MIMO-UNet
    sums both terms over its three output scales; here, like every loss, it is applied to both DRCNet outputs."""

    def __init__(self, fft_weight: float = 0.1):
        super().__init__()
        self.frequency, self.fft_weight = FrequencyL1(), float(fft_weight)

    def forward(self, x, clean, degraded):
        return super().forward(x, clean, degraded) + self.fft_weight * self.frequency(x, clean)


LOSSES = {"intra-cr": IntraCRLoss, "extra-cr": ExtraCRLoss, "aecr": AECRLoss, "l1": L1Loss,
          "l1+fft": L1FrequencyLoss}


def make_loss(name: str = "intra-cr", alpha: float = 0.04, vgg_weights=None, fft_weight: float = 0.1,
              **cr_options) -> RestorationLoss:
    """The trainer's loss by name: "intra-cr" (paper), "extra-cr", "aecr" (ablations), "l1" or "l1+fft"."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    if name == "l1":
        return L1Loss()
    if name == "l1+fft":
        return L1FrequencyLoss(fft_weight)
    return LOSSES[name](alpha=alpha, vgg_weights=vgg_weights, **cr_options)
