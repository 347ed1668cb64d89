"""NAFNet (Chen et al., ECCV 2022) rebuilt from its paper and public architecture, for timing only.

The speed table compares DRCNet with NAFNet "as its own code runs": eager PyTorch, bf16 weights, channels_last,
batch 1. This module re-implements the same computation (random weights; nothing is trained or loaded; no code
of the original is copied): an intro conv, a U-Net of NAF blocks (LayerNorm over channels, 1x1 expand x2,
depthwise 3x3, SimpleGate, simplified channel attention, 1x1; then a LayerNorm, 1x1 expand x2, SimpleGate, 1x1
feed-forward; both halves residual with learned per-channel scales), stride-2 2x2 convs down, 1x1 conv +
PixelShuffle up, additive skips, an ending conv and the image residual.

WIDTH32_GOPRO is the width-32 configuration of the public GoPro (deblurring) options: encoder blocks
[1, 1, 1, 28], one middle block, decoder blocks [1, 1, 1, 1] (the SIDD width-32 options use [2, 2, 4, 8],
12, [2, 2, 2, 2] instead). Their GoPro test also swaps the global average pool for a local one (TLC); the
plain global pool is timed here, which is the cheaper of the two.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

WIDTH32_GOPRO = dict(width=32, encoder=(1, 1, 1, 28), middle=1, decoder=(1, 1, 1, 1))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW tensor, per pixel."""

    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c)), eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def gate(x):
    """SimpleGate: split the channels in two halves and multiply them."""
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm1, self.norm2 = ChannelLayerNorm(c), ChannelLayerNorm(c)
        self.expand = nn.Conv2d(c, 2 * c, 1)
        self.depthwise = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.attention = nn.Conv2d(c, c, 1)            # simplified channel attention on the pooled features
        self.project = nn.Conv2d(c, c, 1)
        self.ffn_in, self.ffn_out = nn.Conv2d(c, 2 * c, 1), nn.Conv2d(c, c, 1)
        self.beta, self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1)), nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x):
        y = gate(self.depthwise(self.expand(self.norm1(x))))
        y = self.project(y * self.attention(F.adaptive_avg_pool2d(y, 1)))
        x = x + self.beta * y
        return x + self.gamma * self.ffn_out(gate(self.ffn_in(self.norm2(x))))


class NAFNet(nn.Module):
    def __init__(self, width: int = 32, encoder=(1, 1, 1, 28), middle: int = 1, decoder=(1, 1, 1, 1)):
        super().__init__()
        self.intro, self.ending = nn.Conv2d(3, width, 3, padding=1), nn.Conv2d(width, 3, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        c = width
        for n in encoder:
            self.encoders.append(nn.Sequential(*(NAFBlock(c) for _ in range(n))))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*(NAFBlock(c) for _ in range(middle)))
        for n in decoder:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*(NAFBlock(c) for _ in range(n))))
        self.multiple = 2 ** len(encoder)

    def forward(self, image):
        h, w = image.shape[-2:]
        image = F.pad(image, (0, -w % self.multiple, 0, -h % self.multiple))
        x, skips = self.intro(image), []
        for block, down in zip(self.encoders, self.downs):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, block, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = block(up(x) + skip)
        return (self.ending(x) + image)[..., :h, :w]


def as_its_code_runs(image) -> tuple[nn.Module, Callable[[], None]]:
    """NAFNet-w32 (WIDTH32_GOPRO) as the speed table times it: eager, bf16 weights, channels_last, batch 1; and
    a no-argument call that runs it once on `image` (H x W x 3 float32 in [0, 1])."""
    model = NAFNet(**WIDTH32_GOPRO).eval().to(torch.bfloat16, memory_format=torch.channels_last)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].to(torch.bfloat16).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            model(x)

    return model, run
