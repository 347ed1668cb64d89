"""Intra-CR and its ablations, and the converted VGG19 (in torchvision's VGG19 layers) on a real photo."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision
from skimage import data, transform

from drcnet import create_model
from drcnet.train.losses import (AECRContrast, ExtraCR, IntraCR, IntraCRLoss, make_loss, mixup_negatives)
from drcnet.train.vgg import DEFAULT_WEIGHTS, VGG19Features

REFERENCE = Path(__file__).parent / "data" / "vgg19_chelsea_reference.json"


def test_committed_vgg19_matches_an_independent_computation_on_chelsea():
    """tests/data/...json was computed by scripts/vgg_reference.py straight from the Keras h5 with scipy:
    no converter, no torch. A wrong transpose, channel order or mean shows up here."""
    ref = json.loads(REFERENCE.read_text())
    img = transform.resize(data.chelsea(), (ref["size"], ref["size"]), anti_aliasing=True).astype(np.float32)
    vgg = VGG19Features(("relu1_1", "relu2_1", "relu3_1"))
    assert vgg.preprocess == "caffe"
    with torch.no_grad():
        feats = vgg(torch.from_numpy(img).permute(2, 0, 1)[None].double().float())
    for name, f in zip(vgg.layers, feats):
        f = f[0].double()
        expected = ref["layers"][name]
        assert f.mean().item() == pytest.approx(expected["mean"], rel=1e-4)
        np.testing.assert_allclose(f.mean(dim=(1, 2))[:8].numpy(), expected["channel_means"], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(f[:8, 5, 7].numpy(), expected["pixel_5_7"], rtol=1e-3, atol=1e-2)


def test_vgg_is_frozen_and_wrong_preprocessing_gives_other_features():
    vgg = VGG19Features()
    assert not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 32, 32)
    other = VGG19Features(preprocess="torchvision")
    assert (vgg(x)[0] - other(x)[0]).abs().max() > 1.0


def test_deeper_layers_need_the_converted_slice(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError), match="relu5_1|VGG19"):
        VGG19Features(("relu5_1",), weights=DEFAULT_WEIGHTS["relu3_1"])


def test_the_extractor_is_torchvisions_vgg19_features():
    ours = VGG19Features().features
    with torch.device("meta"):                  # shapes without allocating the 143M-parameter network
        reference = torchvision.models.vgg19(weights=None).features[: len(ours)]
    assert [type(m) for m in ours] == [type(m) for m in reference]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}


def test_torchvisions_in_place_relus_leave_the_intra_cr_gradient_unchanged():
    """torchvision's VGG19 rectifies in place; the gradient that trains the network must not notice."""
    in_place = VGG19Features()
    out_of_place = copy.deepcopy(in_place)
    for layer in out_of_place.features:
        if isinstance(layer, nn.ReLU):
            layer.inplace = False
    clean, degraded = _pair(1)
    grads = []
    for vgg in (in_place, out_of_place):
        x = (0.5 * clean + 0.5 * degraded).requires_grad_(True)
        IntraCR(vgg=vgg)(x, clean, degraded).backward()
        grads.append(x.grad)
    assert grads[0].abs().sum() > 0 and torch.equal(grads[0], grads[1])


def test_mixup_negatives_follow_the_code_form():
    i, j = torch.full((1, 3, 4, 4), 1.0), torch.zeros(1, 3, 4, 4)
    n = mixup_negatives(i, j, (1.0, 0.95, 0.9))
    assert torch.equal(n[0], i)                         # lambda = 1 is the degraded input, never the positive
    assert torch.allclose(n[2], torch.full_like(i, 0.9))


def _pair(seed=0, n=2, size=32):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(n, 3, size, size, generator=g)
    degraded = (clean + 0.2 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    return clean, degraded


def test_intra_cr_is_exactly_the_spec_formula():
    vgg = VGG19Features()
    cr = IntraCR(vgg=vgg)
    clean, degraded = _pair()
    x = (clean + 0.05 * torch.randn_like(clean)).clamp(0, 1)
    expected = 0.0
    fx, fj = vgg(x), vgg(clean)
    for l, w in enumerate((1 / 16, 1 / 8, 1 / 4)):
        neg = 0.0
        for lam in (1.0, 0.95, 0.9):
            fn = vgg(lam * degraded + (1 - lam) * clean)[l]
            neg = neg + lam * (fx[l] - fn).abs().mean()
        expected = expected + w * (fx[l] - fj[l]).abs().mean() / (neg + 1e-7)
    assert cr(x, clean, degraded).item() == pytest.approx(expected.item(), rel=1e-5)
    loss = IntraCRLoss(alpha=0.04, vgg=vgg)(x, clean, degraded)
    assert loss.item() == pytest.approx((x - clean).abs().mean().item() + 0.04 * expected.item(), rel=1e-5)


def test_intra_cr_reduces_to_aecr_in_its_special_case():
    vgg = VGG19Features(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), random_init=True)
    clean, degraded = _pair(1)
    x = 0.5 * (clean + degraded)
    aecr = AECRContrast(vgg=vgg)
    special = IntraCR(lambdas=(1.0,), layers=aecr.vgg.layers, layer_weights=(1 / 32, 1 / 16, 1 / 8, 1 / 4, 1), vgg=vgg)
    assert special(x, clean, degraded).item() == pytest.approx(aecr(x, clean, degraded).item(), rel=1e-6)
    ratio = aecr.layer_ratios(x, clean, degraded)
    f = vgg(x); fj = vgg(clean); fi = vgg(degraded)
    manual = torch.stack([(a - b).abs().mean() / ((a - c).abs().mean() + 1e-7) for a, b, c in zip(f, fj, fi)])
    assert torch.allclose(ratio, manual, rtol=1e-5)


def test_extra_cr_uses_other_images_of_the_batch():
    """ExtraCR's negative for image k is the degraded image k-1 of the batch (a roll by one), with lambda 1:
    exactly IntraCR's single-negative form applied to the rolled batch, and not to the image's own input."""
    vgg = VGG19Features()
    clean, degraded = _pair(2, n=3)
    x = clean * 0.9
    extra = ExtraCR(vgg=vgg)(x, clean, degraded).item()
    single = IntraCR(vgg=vgg, lambdas=(1.0,))
    assert extra == pytest.approx(single(x, clean, torch.roll(degraded, 1, dims=0)).item(), rel=1e-5)
    assert extra != pytest.approx(single(x, clean, degraded).item(), rel=1e-3)


def test_no_gradient_reaches_the_positive_or_negatives():
    clean, degraded = _pair(3)
    clean.requires_grad_(True)
    degraded.requires_grad_(True)
    x = (clean.detach() * 0.8).requires_grad_(True)
    IntraCR()(x, clean, degraded).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert clean.grad is None and degraded.grad is None


def test_thirty_adam_steps_on_one_pair_lower_the_loss():
    torch.manual_seed(0)
    model = create_model("tiny")
    loss_fn = make_loss("intra-cr")
    clean, degraded = _pair(4, n=1, size=16)     # 16 px: the tiny model's smallest input, 1/4 of the work of 32
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    losses = []
    for _ in range(30):
        out1, out2 = model(degraded)
        loss = loss_fn(out1, clean, degraded) + loss_fn(out2, clean, degraded)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("perceptual")


def test_reference_features_are_reused_only_for_the_same_pair():
    cr = IntraCR()
    clean, degraded = _pair(5)
    x = clean * 0.7
    first = cr(x, clean, degraded).item()
    assert cr(x, clean, degraded).item() == pytest.approx(first)          # memo hit, same value
    clean.mul_(0.5)                                                       # in place: must not reuse
    assert cr(x, clean, degraded).item() == pytest.approx(IntraCR(vgg=cr.vgg)(x, clean, degraded).item())
    other_clean, other_degraded = _pair(6)
    assert cr(x, other_clean, other_degraded).item() != pytest.approx(first, rel=1e-3)
