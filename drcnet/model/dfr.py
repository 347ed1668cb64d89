"""The Dynamic Filter Restoration (DFR) block, spec section 2, one small module per idea.

Every map the app shows is the output of a named submodule, so a plain forward hook reads it:

    DFRBlock
    ├── spatial: SpatialBranch        conv 3x3, split in half, SpatialFilter on the first half, LeakyReLU
    │   └── filter: SpatialFilter     output = the spatial-filter output sf (eq 7)
    │       ├── response: SpatialResponse    output = M_sr (eq 3)
    │       ├── mask: ThresholdMask          output = M, the binary mask at threshold t
    │       ├── gamma_conv, beta_conv        eq 4
    │       └── region_norm: RegionNorm      eqs 5-6
    ├── energy: EnergyAttention       conv 3x3, SimAM, LeakyReLU
    │   └── weights: SimAMWeights     output = the energy-attention weights sigmoid(1/e*) (eqs 8-9)
    ├── identity: 1x1 conv            the identity branch
    └── (the block's own output)      the fused output s_out * e + identity(x)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _float32(fn):
    """Run a statistics-heavy function in float32 whatever the surrounding precision (spec: SimAM and the region
    statistics stay in float32 under mixed precision), and hand back the caller's dtype."""

    def wrapper(self, x, *args):
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = fn(self, x.float(), *(a.float() for a in args))
        return out.to(dtype)

    wrapper.__doc__ = fn.__doc__
    return wrapper


class SpatialResponse(nn.Module):
    """M_sr = sigmoid(conv7x7([mean_c(x), max_c(x)])), eq 3: where the block thinks the degradation is."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):
        s = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(s))


class ThresholdMask(nn.Module):
    """M = [M_sr >= t], without gradient (the public code does the same; no straight-through estimator).

    Deviation from the paper (docs/design.md, "Regions of a pixel or two"): a sample whose masked region has
    fewer than `min_region` pixels gets an empty mask, one whose complement has fewer gets a full mask; either
    way the block normalises the whole map as one region. A region of one or two pixels, normalised by its own mean and variance,
    turns the smallest rounding difference into a different picture: on the derain example a compiled bf16
    graph painted a black blob through two such regions (max M_sr 0.777 and 0.755 against t = 0.75) that the
    eager model happened not to. min_region = 0 is the paper's mask.

    t is a plain attribute so it can be changed on a trained model at run time (DRCNet.set_threshold)."""

    def __init__(self, t: float, min_region: int = 0):
        super().__init__()
        self.t = float(t)
        self.min_region = int(min_region)

    def forward(self, response):
        mask = (response.detach() >= self.t).to(response.dtype)
        if self.min_region <= 0:
            return mask
        area = mask.sum(dim=(1, 2, 3), keepdim=True)             # per sample, without data-dependent branches
        rest = mask[0].numel() - area
        mask = torch.where(rest < self.min_region, torch.ones_like(mask), mask)
        return torch.where(area < self.min_region, torch.zeros_like(mask), mask)

    def extra_repr(self):
        return f"t={self.t}, min_region={self.min_region}"


class RegionNorm(nn.Module):
    """Normalise the masked region and its complement, each with its own per-channel statistics (eqs 5-6).

    mode "sample": statistics per sample, so a result never depends on the rest of the batch (our default);
       n = sum_R R * (x - mu_R) / sqrt(var_R + eps), then the affine (weight, bias) of `norm`.
    mode "official": the public code's arithmetic exactly (spec section 2): batch-pooled region mean, region
       filled with that mean outside the mask, InstanceNorm2d(affine), times sqrt(S_R / (B*H*W)), summed.
    Both share the InstanceNorm's parameters, so official weights load into either mode.
    """

    def __init__(self, channels: int, mode: str = "sample", eps: float = 1e-5):
        super().__init__()
        self.mode = mode
        self.norm = nn.InstanceNorm2d(channels, affine=True, eps=eps)

    @_float32
    def forward(self, x, mask):
        if self.mode == "official":
            return self._official(x, mask)
        # One pass over the pixels: region sums of x and x^2 by two mask contractions, then a single fused
        # x * scale + shift with the scale and shift of each pixel's region. x is centred per channel first so
        # that E[x^2] - mu^2 does not cancel catastrophically. An empty region is never selected: contributes 0.
        x = x - x.mean(dim=(2, 3), keepdim=True)
        m = mask[:, 0]
        area_in = m.sum(dim=(1, 2))[:, None]                                   # (B, 1)
        area_out = m[0].numel() - area_in
        sum_x, sum_x2 = x.sum(dim=(2, 3)), (x * x).sum(dim=(2, 3))           # (B, C)
        in_x, in_x2 = torch.einsum("bchw,bhw->bc", x, m), torch.einsum("bchw,bhw->bc", x * x, m)
        mu_in, mu_out = in_x / area_in.clamp_min(1), (sum_x - in_x) / area_out.clamp_min(1)
        var_in = (in_x2 / area_in.clamp_min(1) - mu_in ** 2).clamp_min(0)
        var_out = ((sum_x2 - in_x2) / area_out.clamp_min(1) - mu_out ** 2).clamp_min(0)
        scale_in, scale_out = torch.rsqrt(var_in + self.norm.eps), torch.rsqrt(var_out + self.norm.eps)
        inside = mask > 0
        scale = torch.where(inside, scale_in[..., None, None], scale_out[..., None, None])
        shift = torch.where(inside, (-mu_in * scale_in)[..., None, None], (-mu_out * scale_out)[..., None, None])
        w, b = self.norm.weight[None, :, None, None], self.norm.bias[None, :, None, None]
        return x * (scale * w) + (shift * w + b)

    def _official(self, x, mask):
        b, c, h, w = x.shape
        mask = mask.expand_as(x)
        out = 0.0
        for region in (mask, 1.0 - mask):
            area = region.sum(dim=(0, 2, 3))
            area = torch.where(area == 0, torch.ones_like(area), area)
            mu = (x * region).sum(dim=(0, 2, 3)) / area
            filled = x * region + (1.0 - region) * mu[None, :, None, None]
            out = out + self.norm(filled) * torch.sqrt(area / (b * h * w))[None, :, None, None]
        return out


class SpatialFilter(nn.Module):
    """Region normalisation with a learned mask (RN-L), eqs 3-7: sf = RN(x; M) * (1 + gamma) + beta."""

    def __init__(self, channels: int, t: float, mode: str = "sample", eps: float = 1e-5, min_region: int = 0):
        super().__init__()
        self.response = SpatialResponse()
        self.mask = ThresholdMask(t, min_region)
        self.gamma_conv = nn.Conv2d(1, 1, 7, padding=3)
        self.beta_conv = nn.Conv2d(1, 1, 7, padding=3)
        self.region_norm = RegionNorm(channels, mode, eps)

    def forward(self, x):
        response = self.response(x)
        gamma, beta = self.gamma_conv(response), self.beta_conv(response)
        n = self.region_norm(x, self.mask(response))
        return n * (1 + gamma) + beta      # eq 7 as coded (1 + gamma), so gamma = 0 is the identity affine


class SpatialBranch(nn.Module):
    """conv 3x3 (Cin -> C); the spatial filter on the first half of the channels (HINet's fixed half split,
    the paper's "randomly divided"); LeakyReLU. Without the filter (a level outside sf_levels) it is conv + act."""

    def __init__(self, cin: int, c: int, t: float, relu_slope: float, use_filter: bool, mode: str, eps: float,
                 min_region: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, c, 3, padding=1)
        self.filter = SpatialFilter(c // 2, t, mode, eps, min_region) if use_filter else None
        self.act = nn.LeakyReLU(relu_slope)

    def forward(self, x):
        a = self.conv(x)
        if self.filter is not None:
            a1, a2 = torch.chunk(a, 2, dim=1)
            a = torch.cat([self.filter(a1), a2], dim=1)
        return self.act(a)


class SimAMWeights(nn.Module):
    """The energy-attention weights of SimAM, eqs 8-9: sigmoid(1/e*), with
    1/e* = (x - mu)^2 / (4 (var + delta)) + 0.5 per sample and channel (var with H*W - 1)."""

    def __init__(self, delta: float):
        super().__init__()
        self.delta = float(delta)

    @_float32
    def forward(self, x):
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=(2, 3), keepdim=True)) ** 2          # two passes: faster here than torch.var_mean
        v = d.sum(dim=(2, 3), keepdim=True) / max(n, 1)
        return torch.sigmoid(d / (4 * (v + self.delta)) + 0.5)

    def extra_repr(self):
        return f"delta={self.delta}"


class EnergyAttention(nn.Module):
    """e = LeakyReLU(conv(x) * SimAM weights): a second conv on the block input, in parallel with the filter."""

    def __init__(self, cin: int, c: int, delta: float, relu_slope: float):
        super().__init__()
        self.conv = nn.Conv2d(cin, c, 3, padding=1)
        self.weights = SimAMWeights(delta)
        self.act = nn.LeakyReLU(relu_slope)

    def forward(self, x):
        e = self.conv(x)
        return self.act(e * self.weights(e).to(e.dtype))


class DFRBlock(nn.Module):
    """out = spatial(x) * energy(x) + identity(x) (spec section 2, step 5).

    Table 4 ablations drop branches; each branch owns its conv. With no branch at all ("base") the block is a
    parameter-free LeakyReLU of the input tiled to C channels: the spec's reconciliation (base = 12.28M) leaves
    the plain block no parameters of its own, so the base network is the HINet skeleton around it.
    """

    def __init__(self, cin: int, c: int, *, t: float, delta: float, relu_slope: float, use_filter: bool,
                 spatial_filter: bool = True, energy_attention: bool = True, identity: bool = True,
                 mode: str = "sample", eps: float = 1e-5, min_region: int = 0):
        super().__init__()
        self.cin, self.c = cin, c
        self.spatial = SpatialBranch(cin, c, t, relu_slope, use_filter, mode, eps, min_region) \
            if spatial_filter else None
        self.energy = EnergyAttention(cin, c, delta, relu_slope) if energy_attention else None
        self.identity = nn.Conv2d(cin, c, 1) if identity else None
        self.act = nn.LeakyReLU(relu_slope)

    def forward(self, x):
        branches = [m(x) for m in (self.spatial, self.energy) if m is not None]
        if branches:
            out = branches[0] if len(branches) == 1 else branches[0] * branches[1]
        else:
            out = self.act(x.repeat(1, -(-self.c // self.cin), 1, 1)[:, : self.c])
        if self.identity is not None:
            out = out + self.identity(x)
        return out
