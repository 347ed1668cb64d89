import numpy as np
import pytest
from scipy import ndimage

from drcnet.data.degrade import (BLUR_NOISE, EVAL_KERNELS, KERNEL_SIZES, RAIN_PRESETS, KernelSizes, add_noise, add_rain,
                            degrade, eval_settings, motion_blur, motion_kernel)


def smooth_image(h=96, w=96, seed=0):
    """A smooth colour image in [0.1, 0.8]: enough structure to blur, far from clipping."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    channels = [0.45 + 0.35 * np.sin(2 * np.pi * (a * x + b * y) + c) for a, b, c in rng.uniform(0.5, 2, (3, 3))]
    return np.stack(channels, -1).astype(np.float32)


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noise_sigma_matches(sigma):
    clean = np.full((256, 256, 3), 0.5, np.float32)
    noisy = add_noise(clean, sigma, np.random.default_rng(1))
    assert abs(np.std(noisy - clean) * 255 / sigma - 1) < 0.02


def test_poisson_gaussian_noise_grows_with_brightness():
    rng = np.random.default_rng(0)
    dark, bright = (add_noise(np.full((128, 128, 3), v, np.float32), 0, rng, poisson=30) for v in (0.1, 0.8))
    assert np.std(bright) > 2 * np.std(dark)


@pytest.mark.parametrize("task", ["denoise", "derain", "deblur"])
def test_degradation_is_deterministic_in_the_seed(task):
    clean = smooth_image(64, 64)
    a, _ = degrade(clean, task, np.random.default_rng(7))
    b, _ = degrade(clean, task, np.random.default_rng(7))
    c, _ = degrade(clean, task, np.random.default_rng(8))
    assert a.dtype == np.float32 and a.shape == clean.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_training_sigma_is_drawn_in_range():
    clean = smooth_image(16, 16)
    sigmas = [degrade(clean, "denoise", np.random.default_rng(i))[1]["sigma"] for i in range(50)]
    assert 0 <= min(sigmas) and max(sigmas) <= 55 and np.ptp(sigmas) > 20


def test_motion_kernels_are_normalised_sized_and_not_a_delta():
    for seed in range(20):
        k = motion_kernel(np.random.default_rng(seed))
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert KERNEL_SIZES[0] <= k.shape[0] <= KERNEL_SIZES[1]
        assert abs(k.sum() - 1) < 1e-5 and k.min() >= 0
        assert k.max() < 0.5 and (k > 1e-3).sum() > 5
    with pytest.raises(ValueError):
        motion_kernel(np.random.default_rng(0), size=33)


def test_motion_blur_blurs_adds_noise_and_quantises():
    """The output is the clean image convolved with the returned kernel (checked against scipy.ndimage, mirror
    boundaries = numpy's reflect padding), plus Gaussian noise of std BLUR_NOISE, rounded to 8 bits."""
    clean = smooth_image()
    rng = np.random.default_rng(3)
    blurred, kernel = motion_blur(clean, rng, size=21)
    assert kernel.shape == (21, 21)
    assert np.allclose(blurred * 255, np.round(blurred * 255), atol=1e-3)
    assert 0 <= blurred.min() and blurred.max() <= 1
    expected = np.stack([ndimage.convolve(clean[..., c].astype(np.float64), kernel, mode="mirror")
                         for c in range(3)], -1)
    residual = blurred - expected
    # noise std 0.01 plus 8-bit rounding (1/255/sqrt(12) = 0.0011): 0.01006; an unblurred image leaves 0.07
    assert abs(residual.std() / np.hypot(BLUR_NOISE, 1 / 255 / np.sqrt(12)) - 1) < 0.05
    assert abs(residual.mean()) < 1e-3
    # high frequencies (finite differences) are damped by the blur
    assert np.abs(np.diff(expected, axis=1)).mean() < 0.8 * np.abs(np.diff(clean, axis=1)).mean()


def test_rain_brightens_stays_in_range_and_heavy_is_heavier():
    clean = smooth_image()
    rain = {s: add_rain(clean, np.random.default_rng(5), s) for s in RAIN_PRESETS}
    for rainy in rain.values():
        assert rainy.min() >= 0 and rainy.max() <= 1
        assert np.all(rainy >= clean - 1e-6)
    assert (rain["heavy"] - clean).mean() > (rain["light"] - clean).mean() > 0
    hazy = add_rain(clean, np.random.default_rng(5), "light", haze=True)
    assert hazy.min() >= 0 and hazy.max() <= 1 and not np.array_equal(hazy, rain["light"])


def test_eval_settings_are_fixed_and_usable():
    assert [s["name"] for s in eval_settings("denoise")] == ["sigma15", "sigma25", "sigma50"]
    assert [s["name"] for s in eval_settings("derain")] == ["light", "heavy"]
    assert [s["name"] for s in eval_settings("deblur")] == [f"kernel{k}_seed{n}" for k, n in EVAL_KERNELS]
    k1, k2 = ([s["kernel"] for s in eval_settings("deblur")] for _ in range(2))     # fixed: the same every call
    assert all(np.array_equal(a, b) and a.shape == (k, k) for a, b, (k, _) in zip(k1, k2, EVAL_KERNELS))
    clean = smooth_image(64, 64)
    for task in ("denoise", "derain", "deblur"):
        for s in eval_settings(task):
            out, info = degrade(clean, task, np.random.default_rng(0), **s)
            assert out.shape == clean.shape and info["task"] == task
            # the setting is the one applied, not a randomly drawn one
            if task == "denoise":
                assert info["sigma"] == s["sigma"]
                assert abs(np.std(out - clean) * 255 / s["sigma"] - 1) < 0.1
            elif task == "derain":
                assert info["setting"] == s["setting"]
            else:
                assert np.array_equal(info["kernel"], s["kernel"])
                again, _ = motion_blur(clean, np.random.default_rng(0), kernel=s["kernel"])
                assert np.array_equal(out, again)


def test_unknown_settings_raise():
    with pytest.raises(TypeError):
        degrade(smooth_image(16, 16), "denoise", np.random.default_rng(0), sigmaa=3)
    with pytest.raises(ValueError):
        degrade(smooth_image(16, 16), "dehaze", np.random.default_rng(0))


# ------------------------------------------------------------------------------ training kernel-size mixtures

def test_default_kernel_sizes_draw_bit_for_bit_as_the_fixed_13_31_range():
    """The default spec keeps every training stream: one rng.integers call, as before the mixtures existed."""
    for seed in range(10):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        size = int(b.integers(KERNEL_SIZES[0] // 2, KERNEL_SIZES[1] // 2 + 1)) * 2 + 1
        assert np.array_equal(motion_kernel(a), motion_kernel(b, size))
        assert a.random() == b.random()                            # and the stream continues in step


def test_a_kernel_mixture_draws_its_ranges_with_their_weights():
    sizes = KernelSizes.parse("7-17:0.7,19-31:0.3")
    assert sizes.ranges == ((7, 17), (19, 31)) and sizes.weights == pytest.approx((0.7, 0.3))
    assert KernelSizes.parse(str(sizes)) == sizes
    rng = np.random.default_rng(0)
    drawn = np.array([sizes.draw(rng) for _ in range(3000)])
    assert set(drawn) == set(range(7, 32, 2))                       # every odd size of both ranges, no other
    assert np.mean(drawn <= 17) == pytest.approx(0.7, abs=0.03)
    small = drawn[drawn <= 17]
    assert np.bincount(small)[7::2].min() > 0.7 * len(small) / 6 * 0.8   # uniform within a range
    # the same draws as the wrapper the deblur curriculum used (rng.random() picks the range first)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(50):
        want = int(b.integers(3, 9)) * 2 + 1 if b.random() < 0.7 else int(b.integers(9, 16)) * 2 + 1
        assert sizes.draw(a) == want


@pytest.mark.parametrize("spec", ["8-17", "7-33", "7-17:0", "17-7", "seven", "7-17:x", "1-5"])
def test_bad_kernel_specs_are_refused(spec):
    with pytest.raises(ValueError, match="kernel"):
        KernelSizes.parse(spec)


def test_degrade_draws_training_kernels_from_the_given_sizes():
    clean = smooth_image(48, 48)
    for seed in range(8):
        _, info = degrade(clean, "deblur", np.random.default_rng(seed), sizes="5-7")
        assert info["kernel"].shape[0] in (5, 7)
    assert motion_kernel(np.random.default_rng(0), size=3).shape == (3, 3)   # small sizes are allowed now
