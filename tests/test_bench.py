"""drcnet.bench.conv_flops against counts worked out by hand: 2 x multiply-accumulates, where each output sample
of a Conv2d gathers (in_channels / groups) x kh x kw inputs and each input sample of a ConvTranspose2d scatters
into (out_channels / groups) x kh x kw outputs."""
import pytest
import torch
import torch.nn as nn

from drcnet.bench import conv_flops


def flops(module: nn.Module, *shape: int) -> float:
    return conv_flops(module.eval(), torch.zeros(shape))


def test_plain_conv():
    # 8 x 10 x 12 outputs, each 3 in-channels x 3 x 3 taps
    assert flops(nn.Conv2d(3, 8, 3, padding=1), 1, 3, 10, 12) == 2 * (8 * 10 * 12) * (3 * 3 * 3)


def test_depthwise_conv_is_not_zero_work():
    # 16 x 8 x 8 outputs, each 1 in-channel x 3 x 3 taps (the old kh*kw // groups gave 9 // 16 = 0)
    assert flops(nn.Conv2d(16, 16, 3, padding=1, groups=16), 1, 16, 8, 8) == 2 * (16 * 8 * 8) * (1 * 3 * 3)


def test_grouped_strided_conv_with_batch():
    # 2 images x 12 x 8 x 8 outputs (stride 2), each 8 / 4 = 2 in-channels x 3 x 3 taps
    conv = nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4)
    assert flops(conv, 2, 8, 16, 16) == 2 * (2 * 12 * 8 * 8) * (2 * 3 * 3)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose(groups):
    # 4 x 5 x 5 input samples, each scattered into 6 / groups out-channels x 3 x 3 taps (output 6 x 10 x 10)
    up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=groups)
    assert flops(up, 1, 4, 5, 5) == 2 * (4 * 5 * 5) * (6 // groups * 3 * 3)


def test_nested_layers_are_summed_and_hooks_removed():
    separable = nn.Sequential(nn.Conv2d(6, 6, 5, padding=2, groups=6), nn.ReLU(), nn.Sequential(nn.Conv2d(6, 4, 1)))
    depthwise, pointwise = 2 * (6 * 7 * 9) * (1 * 5 * 5), 2 * (4 * 7 * 9) * 6
    assert flops(separable, 1, 6, 7, 9) == depthwise + pointwise
    assert all(not m._forward_hooks for m in separable.modules())
