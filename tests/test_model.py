"""The network: parameter budget, shapes, the DFR internals the spec pins down, the runtime threshold."""
from pathlib import Path

import pytest
import torch

from drcnet import VARIANTS, count_parameters, create_model
from drcnet.model.dfr import RegionNorm, SimAMWeights, SpatialFilter

# README ("Presets") and spec section 3: the exact parameter counts of the presets and of Table 4 as reconciled
# (the paper's 18.9M; base 12.28M, +SF 15.45M, +EA 15.45M, +SF+identity 15.80M, +SF+EA 18.62M). Typed out here
# from the README, not computed: a changed layer changes a count and fails its case.
COUNTS = {("paper", "DFR"): 18_975_798, ("paper", "base"): 12_273_670, ("paper", "base+SF"): 15_449_398,
          ("paper", "base+EA"): 15_445_894, ("paper", "base+SF+identity"): 15_803_574,
          ("paper", "base+SF+EA"): 18_621_622, ("lite", "DFR"): 4_750_646, ("tiny", "DFR"): 1_191_606}


def test_every_table4_variant_is_counted():
    assert {v for p, v in COUNTS if p == "paper"} == set(VARIANTS)


@pytest.mark.parametrize("preset,variant", sorted(COUNTS))
def test_exact_parameter_counts(preset, variant):
    assert count_parameters(create_model(preset, variant=variant)) == COUNTS[preset, variant]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("h,w", [(1, 1), (17, 33), (64, 40), (9, 100)])
def test_any_size_in_same_size_out(variant, h, w, device):
    model = create_model("tiny", variant=variant).eval().to(device)
    x = torch.rand(2, 3, h, w, device=device)
    with torch.no_grad():
        out1, out2 = model(x)
    assert out1.shape == out2.shape == x.shape
    assert torch.isfinite(out2).all()


def test_simam_weights_equal_closed_form_of_eqs_8_9():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    delta = 1e-6
    w = SimAMWeights(delta)(x)
    # eq 8: e* = 4 (sigma^2 + lambda) / ((t - mu)^2 + 2 sigma^2 + 2 lambda), sigma^2 with M = H*W - 1
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mu) ** 2).sum(dim=(2, 3), keepdim=True) / (5 * 7 - 1)
    e_star = 4 * (var + delta) / ((x - mu) ** 2 + 2 * var + 2 * delta)
    assert torch.allclose(w, torch.sigmoid(1 / e_star), atol=1e-12)


def test_region_statistics_are_per_sample_and_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    norm = RegionNorm(4, mode="sample")
    x = torch.randn(3, 4, 8, 8)
    mask = (torch.rand(3, 1, 8, 8) > 0.5).float()
    together = norm(x, mask)
    alone = torch.cat([norm(x[i:i + 1], mask[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)
    # and each region is normalised: zero mean, unit variance inside the mask of sample 0
    inside = together[0][:, mask[0, 0] > 0]
    assert inside.mean(dim=1).abs().max() < 1e-5
    assert (inside.var(dim=1, unbiased=False) - 1).abs().max() < 1e-3


def test_official_region_statistics_do_depend_on_the_batch():
    torch.manual_seed(0)
    norm = RegionNorm(4, mode="official")
    x = torch.randn(2, 4, 8, 8) + torch.tensor([0.0, 3.0]).view(2, 1, 1, 1)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    alone = torch.cat([norm(x[i:i + 1], mask[i:i + 1]) for i in range(2)])
    assert not torch.allclose(norm(x, mask), alone, atol=1e-3)


def test_empty_region_contributes_zero():
    norm = RegionNorm(2, mode="sample")
    x = torch.randn(1, 2, 6, 6)
    out = norm(x, torch.ones(1, 1, 6, 6))
    assert torch.isfinite(out).all()
    assert torch.allclose(out, (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-5), atol=1e-5)


def test_mask_has_no_gradient_but_response_conv_learns_through_gamma_beta():
    torch.manual_seed(0)
    sf = SpatialFilter(4, t=0.5)
    x = torch.randn(2, 4, 12, 12, requires_grad=True)
    captured = {}
    sf.mask.register_forward_hook(lambda m, i, o: captured.setdefault("mask", o))
    sf(x).square().mean().backward()
    assert not captured["mask"].requires_grad
    grad = sf.response.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # the only path from the response conv to the loss is gamma/beta: zeroing those convs kills its gradient
    sf.zero_grad()
    for conv in (sf.gamma_conv, sf.beta_conv):
        conv.weight.data.zero_()
    sf(x).square().mean().backward()
    assert sf.response.conv.weight.grad.abs().sum() == 0


def test_changing_t_changes_the_output_when_the_response_crosses_t(device):
    torch.manual_seed(0)
    model = create_model("tiny").eval().to(device)
    x = torch.rand(1, 3, 32, 32, device=device)
    responses = []
    hook = model.stage1.encoder[0].dfr.spatial.filter.response.register_forward_hook(
        lambda m, i, o: responses.append(o))
    with torch.no_grad():
        a = model(x)[1]
    hook.remove()
    t = float(responses[0].median())           # a threshold the response map certainly crosses
    with torch.no_grad():
        model.set_threshold(t)
        b = model(x)[1]
        model.set_threshold(1.0)
        c = model(x)[1]
    assert all(m.t == 1.0 for _, _, blk in model.dfr_blocks() for m in [blk.spatial.filter.mask])
    assert (b - c).abs().max() > 1e-4
    assert model.cfg.t == 1.0
    with pytest.raises(ValueError):
        model.set_threshold(1.5)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown variant"):
        create_model("tiny", variant="nope")
    with pytest.raises(ValueError, match="unknown preset"):
        create_model("huge")


def test_readme_states_these_counts():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for n in COUNTS.values():
        assert f"{n:,}" in readme, n


@pytest.mark.parametrize("mode", ["sample", "official"])
def test_empty_or_full_mask_falls_back_to_whole_map_instance_norm(mode):
    """What explain_mask tells the user: with no pixel (or every pixel) over t, RegionNorm is InstanceNorm.
    Official mode adds one small constant: the empty region's area is clamped to 1, so its InstanceNorm of a
    constant (= the bias) is weighted by sqrt(1 / (B*H*W)) instead of 0."""
    torch.manual_seed(0)
    rn = RegionNorm(4, mode)
    with torch.no_grad():
        rn.norm.weight.uniform_(0.5, 1.5), rn.norm.bias.uniform_(-0.2, 0.2)
    x = torch.randn(1, 4, 12, 10) * 3 + 1
    ref = torch.nn.functional.instance_norm(x, weight=rn.norm.weight, bias=rn.norm.bias, eps=rn.norm.eps)
    if mode == "official":
        ref = ref + rn.norm.bias[None, :, None, None] * (1 / (12 * 10)) ** 0.5
    for fill in (0.0, 1.0):
        out = rn(x, torch.full((1, 1, 12, 10), fill))
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
