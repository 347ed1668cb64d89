"""DRCNet: two encoder-decoders (HINet's skeleton) built from DFR blocks, spec section 1.

    input ─ conv_01 ─ encoder_1 ─ decoder_1 ─ SAM ─► out1 (stage-1 image)
              │                      │ feat
    input ─ conv_02 ─ cat12 ─ encoder_2 (+ CSFF from stage 1) ─ decoder_2 ─ last ─► out2 (the restoration)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from drcnet.model.config import DRCNetConfig, check_threshold, make_config
from drcnet.model.dfr import DFRBlock, ThresholdMask
from drcnet.model.hub_mixin import HubMixin


class EncoderLevel(nn.Module):
    """A DFR block, optional cross-stage feature fusion (stage 2), optional 4x4 stride-2 down-sampling."""

    def __init__(self, cin: int, c: int, cfg: DRCNetConfig, level: int, downsample: bool, csff: bool):
        super().__init__()
        self.dfr = DFRBlock(cin, c, t=cfg.t, delta=cfg.delta, relu_slope=cfg.relu_slope,
                            use_filter=level in cfg.sf_levels, mode=cfg.region_stats, eps=cfg.norm_eps,
                            min_region=cfg.min_region,
                            **cfg.branches)
        self.csff_enc = nn.Conv2d(c, c, 3, padding=1) if csff else None
        self.csff_dec = nn.Conv2d(c, c, 3, padding=1) if csff else None
        self.down = nn.Conv2d(c, c, 4, stride=2, padding=1, bias=False) if downsample else None

    def forward(self, x, enc=None, dec=None):
        y = self.dfr(x)
        if self.csff_enc is not None:
            y = y + self.csff_enc(enc) + self.csff_dec(dec)
        return y, (self.down(y) if self.down is not None else None)


class ResBlock(nn.Module):
    """The decoder's residual block: conv3x3 -> LReLU -> conv3x3 -> LReLU, plus a 1x1 identity."""

    def __init__(self, cin: int, c: int, relu_slope: float):
        super().__init__()
        self.conv_1 = nn.Conv2d(cin, c, 3, padding=1)
        self.conv_2 = nn.Conv2d(c, c, 3, padding=1)
        self.identity = nn.Conv2d(cin, c, 1)
        self.act = nn.LeakyReLU(relu_slope)

    def forward(self, x):
        return self.act(self.conv_2(self.act(self.conv_1(x)))) + self.identity(x)


class DecoderLevel(nn.Module):
    """Up-sample (2x2 transposed conv, 2C -> C), concat with the skip conv of the encoder feature, ResBlock."""

    def __init__(self, c: int, relu_slope: float):
        super().__init__()
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.skip_conv = nn.Conv2d(c, c, 3, padding=1)
        self.block = ResBlock(2 * c, c, relu_slope)

    def forward(self, x, skip):
        return self.block(torch.cat([self.up(x), self.skip_conv(skip)], dim=1))


class SAM(nn.Module):
    """Supervised attention module (MPRNet/HINet): the stage-1 image and an attention-gated feature for stage 2."""

    def __init__(self, c: int, in_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, in_ch, 3, padding=1)
        self.conv3 = nn.Conv2d(in_ch, c, 3, padding=1)

    def forward(self, x, image):
        img = self.conv2(x) + image
        return self.conv1(x) * torch.sigmoid(self.conv3(img.to(x.dtype))) + x, img


class Stage(nn.Module):
    """One encoder-decoder. Stage 2 passes stage 1's encoder and decoder features to its CSFF convs."""

    def __init__(self, cfg: DRCNetConfig, csff: bool):
        super().__init__()
        widths = [cfg.wf * 2 ** i for i in range(cfg.depth)]
        cins = [cfg.wf] + widths[:-1]
        last = cfg.depth - 1
        self.encoder = nn.ModuleList(
            EncoderLevel(cins[i], widths[i], cfg, i, downsample=i < last, csff=csff and i < last)
            for i in range(cfg.depth))
        self.decoder = nn.ModuleList(DecoderLevel(widths[i], cfg.relu_slope) for i in range(last))  # index = level

    def forward(self, x, encs=None, decs=None):
        skips = []
        for i, level in enumerate(self.encoder):
            skip, down = level(x, *((encs[i], decs[i]) if encs is not None and i < len(decs) else ()))
            skips.append(skip)
            x = down if down is not None else skip
        outs = [None] * len(self.decoder)
        for i in reversed(range(len(self.decoder))):
            x = outs[i] = self.decoder[i](x, skips[i])
        return x, skips, outs


class DRCNet(HubMixin, nn.Module):
    """The network. From the Hub's conventions (drcnet.model.hub_mixin): DRCNet.from_pretrained("denoise" |
    folder | "owner/name"), model.save_pretrained(folder), model.push_to_hub("owner/name")."""

    def __init__(self, cfg: DRCNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DRCNetConfig()
        self.conv_01 = nn.Conv2d(cfg.in_ch, cfg.wf, 3, padding=1)
        self.conv_02 = nn.Conv2d(cfg.in_ch, cfg.wf, 3, padding=1)
        self.stage1 = Stage(cfg, csff=False)
        self.sam12 = SAM(cfg.wf, cfg.in_ch)
        self.cat12 = nn.Conv2d(2 * cfg.wf, cfg.wf, 1)
        self.stage2 = Stage(cfg, csff=True)
        self.last = nn.Conv2d(cfg.wf, cfg.in_ch, 3, padding=1)
        for m in self.modules():                # t per block at a quantile of its M_sr (None: the fixed t)
            if isinstance(m, ThresholdMask):
                m.quantile = cfg.mask_quantile

    def set_threshold(self, t: float) -> None:
        """Change the mask threshold t of every spatial filter at run time."""
        t = check_threshold(t)
        self.cfg.t = t
        for m in self.modules():
            if isinstance(m, ThresholdMask):
                m.t = float(t)

    def dfr_blocks(self):
        """Yield (stage, level, DFRBlock) for every block: the places the feature probes hook."""
        for s, stage in ((1, self.stage1), (2, self.stage2)):
            for i, level in enumerate(stage.encoder):
                yield s, i, level.dfr

    def forward(self, image):
        """image (B, C, H, W) of any H, W -> (out1, out2), both cropped back to H x W."""
        h, w = image.shape[-2:]
        x = pad_to_multiple(image, self.cfg.multiple)
        # The network runs in its weights' dtype; the two image residuals are added in the input's precision,
        # so a bf16 model fed float32 keeps the input's fine detail (16-bit images) instead of rounding to bf16.
        xin = x.to(self.conv_01.weight.dtype)
        feat1, encs, decs = self.stage1(self.conv_01(xin))
        feat, out1 = self.sam12(feat1, x)
        feat2, _, _ = self.stage2(self.cat12(torch.cat([self.conv_02(xin), feat], dim=1)), encs, decs)
        out2 = self.last(feat2) + x
        return out1[..., :h, :w], out2[..., :h, :w]


def pad_to_multiple(x, m: int):
    """Pad bottom/right to a multiple of m: reflect where the image is large enough, replicate otherwise."""
    h, w = x.shape[-2:]
    ph, pw = -h % m, -w % m
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def create_model(preset: str = "paper", **overrides) -> DRCNet:
    """The public entry point: `create_model("lite", t=0.8, variant="base+SF")`."""
    return DRCNet(make_config(preset, **overrides))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
