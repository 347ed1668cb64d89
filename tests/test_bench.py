"""drcnet.eval.bench.conv_flops against counts worked out by hand: 2 x multiply-accumulates, where each output sample
of a Conv2d gathers (in_channels / groups) x kh x kw inputs and each input sample of a ConvTranspose2d scatters
into (out_channels / groups) x kh x kw outputs."""
import pytest
import torch
import torch.nn as nn

from drcnet.eval.timing import conv_flops


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


# ---------------------------------------------------------------- the interleaved timer, NAFNet, the profile

def test_interleaved_medians_take_turns_and_time_each_method_alone(monkeypatch):
    import drcnet.eval.timing as timing

    clock, calls = [0.0], []
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    def method(name, seconds):
        def run():
            calls.append(name)
            clock[0] += seconds
        return run

    medians = timing.interleaved_medians({"a": method("a", 2.0), "b": method("b", 0.5)}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4                     # one warm-up turn, then three timed turns, a and b alternating
    assert medians == {"a": 2.0, "b": 0.5}


def test_nafnet_w32_has_the_published_size():
    """The timing rebuild of NAFNet-w32 (GoPro options) against the paper's numbers: 17.11 M parameters and
    16 GMACs at 256 x 256; the output keeps the input's size (padding to 16 and cropping back)."""
    from drcnet.eval.nafnet import WIDTH32_GOPRO, NAFNet

    model = NAFNet(**WIDTH32_GOPRO).eval()
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - 17.11) < 0.01
    assert round(conv_flops(model, torch.zeros(1, 3, 256, 256)) / 2e9) == 16
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 40, 50)).shape == (1, 3, 40, 50)


def test_profile_shares_cover_the_forward_and_name_the_convolutions():
    from drcnet.eval.profile import profile_preset, shares

    by_size = profile_preset("tiny", [32, 64], compiled=False)
    assert sorted(by_size) == [32, 64]
    top = shares(by_size[64], top=50)
    assert abs(sum(pct for _, pct in shares(by_size[64], top=10**6)) - 100) < 1e-6
    assert [pct for _, pct in top] == sorted((pct for _, pct in top), reverse=True)
    assert any("convolution" in name for name, _ in top)


def test_a_training_step_of_the_speed_table_updates_every_stage():
    from drcnet.eval.speed import train_step

    step, model = train_step("tiny", "l1", batch=2, patch=32, compile=False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    step()
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert "last.weight" in moved and "conv_01.weight" in moved            # both outputs took the loss
    assert any(n.startswith("stage1.") for n in moved) and any(n.startswith("stage2.") for n in moved)


def test_compiled_kernel_names_are_compared_across_graphs_and_sizes():
    from drcnet.eval.profile import canonical

    assert canonical("graph_3_cpp_fused_add_mul_sigmoid_31") == canonical("graph_0_cpp_fused_add_mul_sigmoid_7")
    assert canonical("## Call CompiledFxGraph f2yag662e5oj ##") == canonical("## Call CompiledFxGraph fdws5x ##")
    assert canonical("aten::mkldnn_convolution") == "aten::mkldnn_convolution"


def test_the_conv_timer_counts_each_convolutions_flops_and_time_by_kind():
    from drcnet.eval.profile import ConvTimer, conv_table

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1, groups=4),
                                torch.nn.ConvTranspose2d(8, 4, 2, stride=2))
    x = torch.rand(2, 3, 16, 16)
    timer = ConvTimer(model)
    with torch.inference_mode():
        model(x)
        model(x)
    timer.remove()
    rows = dict(timer.rows)
    assert len(rows) == 3 and all(calls == 2 and seconds > 0 for calls, seconds, _ in rows.values())
    flops = sorted(f / 2 for _, _, f in rows.values())
    # 2 x multiply-adds: 3->8 3x3 over 2x16x16 outputs; 8->8 3x3 in 4 groups; 8->4 2x2 transposed from 2x16x16 inputs
    assert flops == sorted([2 * 2 * 16 * 16 * 8 * 3 * 9, 2 * 2 * 16 * 16 * 8 * 2 * 9, 2 * 2 * 8 * 16 * 16 * 4 * 4])
    model(x)
    assert all(calls == 2 for calls, _, _ in timer.rows.values())        # removed: no more counting
    table = conv_table("toy", model, lambda: model(x), runs=2)
    assert "| Conv2d 3->8 3x3 at (2, 16, 16) | 1 |" in "\n".join(table)
