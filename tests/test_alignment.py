"""drcnet.alignment: the statistics on constructed cases, the truth maps, and the per-block measurement on a tiny
random model (CPU, small images: a few seconds)."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage, stats

from drcnet import Restorer, create_model
from drcnet.eval.alignment import (BlockAlignment, block_alignment, blur_truth, degrade_with_truth, oracle_masks,
                              oracle_psnr, rain_with_layer, roc_auc, spatially_varying_noise, spearman, to_image,
                              top_label, truth_mask)
from drcnet.data.degrade import add_rain, motion_blur
from drcnet.model.probes import FeatureProbe

BLOCKS = {(s, l) for s in (1, 2) for l in range(4)}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("tiny").eval()


def photo(size=64, seed=0):
    """A smooth test picture with some edges (a random low-passed field plus a bright square)."""
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.random((size, size, 3)), (4, 4, 0))
    image = (image - image.min()) / np.ptp(image) * 0.6 + 0.1
    image[size // 4: size // 2, size // 4: size // 2] += 0.3
    return image.astype(np.float32)


# ------------------------------------------------------------------------------------------- statistics

def test_auc_of_the_truth_is_one_of_its_negative_zero_of_noise_a_half():
    rng = np.random.default_rng(0)
    truth = rng.random((100, 100))                          # 10^4 pixels
    label = top_label(truth)
    assert label.mean() == pytest.approx(0.10, abs=1e-3)
    assert roc_auc(truth, label) == 1.0
    assert roc_auc(-truth, label) == 0.0
    assert roc_auc(rng.random((100, 100)), label) == pytest.approx(0.5, abs=0.05)


def test_auc_counts_ties_one_half_and_matches_pair_counting():
    assert roc_auc(np.ones(10), np.arange(10) < 3) == 0.5
    rng = np.random.default_rng(1)
    score, label = rng.integers(0, 4, 60), rng.random(60) < 0.3          # many ties
    pos, neg = score[label][:, None], score[~label][None, :]
    pairs = ((pos > neg) + 0.5 * (pos == neg)).mean()
    assert roc_auc(score, label) == pytest.approx(pairs)
    assert math.isnan(roc_auc(score, np.zeros(60, bool)))


def test_spearman_basics():
    rng = np.random.default_rng(2)
    a, b = rng.random(500), rng.random(500)
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, np.exp(3 * a)) == pytest.approx(1.0)             # any increasing function
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert abs(spearman(a, b)) < 0.15
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
    ties = rng.integers(0, 5, 200)
    assert spearman(ties, b[:200]) == pytest.approx(stats.spearmanr(ties, b[:200]).statistic)
    assert math.isnan(spearman(np.ones(10), a[:10]))


# ------------------------------------------------------------------------------------------ truth maps

def test_rain_layer_is_the_generators_and_marks_the_streaks():
    clean = photo(96)
    rainy, layer = rain_with_layer(clean, np.random.default_rng(3), "heavy")
    np.testing.assert_array_equal(rainy, add_rain(clean, np.random.default_rng(3), "heavy"))
    assert layer.shape == clean.shape[:2] and 0 <= layer.min() and layer.max() <= 1
    brightening = (rainy - clean).mean(axis=2)
    label = top_label(layer)
    assert brightening[label].mean() > 3 * brightening[~label].mean()


def test_blur_truth_is_largest_at_the_edges():
    clean = np.full((64, 64, 3), 0.2, np.float32)
    clean[:, 32:] = 0.8                                                   # one vertical edge
    blurred, _ = motion_blur(clean, np.random.default_rng(4), 21)
    truth = blur_truth(blurred, clean)
    assert truth.shape == (64, 64)
    assert truth[:, 28:36].mean() > 10 * truth[:, :8].mean()
    label = top_label(truth)
    assert np.abs(np.nonzero(label)[1] - 32).max() <= 16                 # the label hugs the edge


def test_noise_sigma_map_is_the_local_noise_level():
    clean = photo(128)
    noisy, sigma = spatially_varying_noise(clean, np.random.default_rng(5), lo=5, hi=50)
    assert sigma.shape == (128, 128) and noisy.shape == clean.shape
    assert sigma.min() == pytest.approx(5, abs=1e-3) and sigma.max() == pytest.approx(50, abs=1e-3)
    residual = (noisy - clean) * 255
    local_var = ndimage.uniform_filter((residual ** 2).mean(axis=2), 9)  # zero-mean noise: E[n^2] = sigma^2
    local_std = np.sqrt(local_var)
    assert np.corrcoef(local_std.ravel(), sigma.ravel())[0, 1] > 0.95
    assert np.median(np.abs(local_std / sigma - 1)) < 0.1
    label = top_label(sigma)
    assert residual[label].std() > 1.3 * residual[~label].std()          # the label is where the noise is strongest


def test_degrade_with_truth_shapes():
    clean = photo(48)
    for task in ("derain", "deblur", "denoise"):
        degraded, truth = degrade_with_truth(clean, task, np.random.default_rng(6))
        assert degraded.shape == clean.shape and truth.shape == clean.shape[:2]
        assert np.isfinite(truth).all() and truth.max() > truth.min()
    with pytest.raises(ValueError):
        degrade_with_truth(clean, "dehaze", np.random.default_rng(6))


# ------------------------------------------------------------------------------------- block alignment

def test_to_image_undoes_padding_and_scale():
    block_map = np.arange(16, dtype=np.float32).reshape(4, 4)             # level 1 of a 6 x 6 image (padded to 8)
    up = to_image(block_map, (6, 6), 8, "nearest")
    assert up.shape == (6, 6)
    np.testing.assert_array_equal(up[::2, ::2], block_map[:3, :3])


def test_block_alignment_on_a_tiny_random_model(model):
    clean = photo(64)
    degraded, truth = degrade_with_truth(clean, "deblur", np.random.default_rng(7))
    scores = block_alignment(model, degraded, truth)
    assert set(scores) == BLOCKS
    for s in scores.values():
        assert isinstance(s, BlockAlignment)
        for value in (s.auc, s.recall, s.coverage, s.t_top):
            assert 0.0 <= value <= 1.0
        assert -1.0 <= s.spearman <= 1.0 and s.t == 0.75
        assert (0.0 <= s.precision <= 1.0) if s.coverage > 0 else math.isnan(s.precision)
    # a Restorer (fp32, whole-image pass) of the same weights measures the same
    torch.manual_seed(0)
    restorer = Restorer(create_model("tiny"), device="cpu", precision="fp32")
    again = block_alignment(restorer, degraded, truth)
    for key in BLOCKS:
        assert again[key].auc == pytest.approx(scores[key].auc, abs=1e-6)


def test_oracle_masks_replace_the_mask_in_chosen_blocks_only(model):
    clean = photo(64)
    degraded, truth = degrade_with_truth(clean, "denoise", np.random.default_rng(8))
    x = torch.from_numpy(degraded).permute(2, 0, 1)[None]
    with oracle_masks(model, truth, [(2, 1)]), FeatureProbe(model, pca=False) as probe, torch.no_grad():
        model(x)
    expected = truth_mask(truth, (32, 32), 8)
    assert expected.mean() == pytest.approx(0.10, abs=0.01)
    np.testing.assert_array_equal(probe.maps[(2, 1)].mask, expected)
    other = probe.maps[(1, 1)]
    np.testing.assert_array_equal(other.mask, (other.response >= 0.75).astype(np.float32))
    assert "forward" not in vars(model.stage2.encoder[1].dfr.spatial.filter.mask)      # patch removed
    with pytest.raises(ValueError):
        with oracle_masks(model, truth, [(3, 0)]):
            pass


def test_oracle_psnr_returns_one_value_per_photo_and_variant(model):
    result = oracle_psnr("denoise", model, [photo(32)], [(2, 1)])
    assert set(result) == {"model", "oracle", "misplaced"}
    assert all(len(v) == 1 and np.isfinite(v[0]) for v in result.values())
