"""drcnet.data.device_batches: the GPU data path makes the degradations of drcnet.data.degrade, deterministically.

Runs on the CPU (the same torch code runs on CUDA); the pixel operations are compared with the numpy ones."""
import numpy as np
import pytest
import torch
from scipy import signal

from drcnet.data import degrade as D
from drcnet.data.datasets import dihedral
from drcnet.data.device_batches import (BLUR_SIDE, BatchRecipes, DeviceBatchStream, DevicePhotos, centred,
                                   blur_batch, streaks_batch)


@pytest.fixture(scope="module")
def photos():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:90, 0:120] / 90.0
    return [np.clip(np.stack([0.5 + 0.4 * np.sin(xx * (2 + n + c)) * np.cos(yy * (3 + c)) for c in range(3)], -1)
                    + 0.05 * rng.random((90, 120, 3)), 0, 1).astype(np.float32) for n in range(3)]


def test_blur_matches_numpy_blur():
    rng = np.random.default_rng(1)
    images = rng.random((2, 40, 44, 3)).astype(np.float32)
    kernels = [D.motion_kernel(rng, 13), D.motion_kernel(rng, 31)]
    want = np.stack([D.blur(im, k) for im, k in zip(images, kernels)])
    got = blur_batch(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()),
                     torch.from_numpy(np.stack([centred(k, BLUR_SIDE) for k in kernels])))
    np.testing.assert_allclose(got.numpy().transpose(0, 2, 3, 1), want, atol=2e-5)


def test_streaks_match_numpy_rain_layer_convolution():
    rng = np.random.default_rng(2)
    seeds = (rng.random((2, 50, 60)) < 0.01) * rng.uniform(0.5, 1.0, (2, 50, 60))
    ks = [D.line_kernel(12.0, 15.0, 0.7), D.line_kernel(39.5, -25.0, 1.2)]
    want = np.stack([signal.fftconvolve(s, k, mode="same") / k.max() for s, k in zip(seeds, ks)])
    got = streaks_batch(torch.from_numpy(seeds[:, None].astype(np.float32)),
                        torch.from_numpy(np.stack([centred(k / k.max(), 41) for k in ks])))
    np.testing.assert_allclose(got[:, 0].numpy(), want, atol=2e-5)


def test_crops_and_dihedral_match_the_numpy_path(photos):
    dev = DevicePhotos(photos, "denoise", patch=32, device="cpu")
    recipe = {"photo": torch.tensor([0, 1, 2, 1, 0, 2, 1, 0]), "top": torch.arange(8) * 5,
              "left": torch.arange(8) * 7, "dihedral": torch.arange(8), "pixel_seed": torch.tensor(3),
              "sigma": torch.zeros(8, dtype=torch.float64)}
    degraded, clean = dev.make(recipe)
    for i in range(8):
        n, t, l = int(recipe["photo"][i]), int(recipe["top"][i]), int(recipe["left"][i])
        u8 = np.round(photos[n] * 255) / 255
        want = dihedral(u8[t:t + 32, l:l + 32], i)
        np.testing.assert_allclose(clean[i].numpy().transpose(1, 2, 0), want, atol=1e-6)
    assert torch.equal(degraded, clean)                          # sigma 0: no noise


@pytest.mark.parametrize("task", ["denoise", "derain", "deblur"])
def test_batches_are_deterministic_shaped_and_degraded(task, photos):
    stream = DeviceBatchStream(photos, task, patch=32, batch=4, device="cpu", seed=5)
    first = list(stream(0, 3))
    again = list(stream(2, 3))                                   # resume at iteration 2: the same batch
    assert torch.equal(first[2][0], again[0][0]) and torch.equal(first[2][1], again[0][1])
    for degraded, clean in first:
        assert degraded.shape == clean.shape == (4, 3, 32, 32)
        assert 0 <= float(clean.min()) and float(clean.max()) <= 1
        assert float((degraded - clean).abs().mean()) > 1e-3     # something was done to every batch
    assert not torch.equal(first[0][1], first[1][1])             # batches differ between iterations


def test_degradation_statistics_follow_drcnet_degrade(photos):
    """Noise levels span U[0, 55]/255; rain only brightens; blur keeps the mean and smooths."""
    noise = DeviceBatchStream(photos, "denoise", patch=48, batch=16, device="cpu", seed=1)
    d, c = next(noise(0, 1))
    stds = (d - c).flatten(1).std(1) * 255
    assert 0 <= float(stds.min()) and float(stds.max()) <= D.TRAIN_SIGMA_MAX * 1.1 and float(stds.max()) > 20
    rain = DeviceBatchStream(photos, "derain", patch=48, batch=8, device="cpu", seed=1)
    d, c = next(rain(0, 1))
    assert float((d - c).min()) >= -1e-6 and float((d - c).max()) > 0.2
    blur = DeviceBatchStream(photos, "deblur", patch=48, batch=8, device="cpu", seed=1)
    d, c = next(blur(0, 1))
    assert abs(float(d.mean() - c.mean())) < 0.02
    grad = lambda x: float((x[..., 1:] - x[..., :-1]).abs().mean())      # noqa: E731
    assert grad(d) < grad(c)


def test_recipes_use_the_numpy_kernels():
    rec = BatchRecipes([(100, 100)] * 2, "deblur", patch=32, batch=3, seed=0)[7]
    k = rec["kernel"].numpy()
    assert k.shape == (3, BLUR_SIDE, BLUR_SIDE)
    np.testing.assert_allclose(k.sum((1, 2)), 1, atol=1e-5)
    # each one a motion kernel as test_degrade checks them: spread (not a delta), within the size range, its own
    for one in k:
        rows, cols = np.nonzero(one > 0)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 <= D.KERNEL_SIZES[1]
        assert one.min() >= 0 and one.max() < 0.5 and (one > 1e-3).sum() > 5
    assert not np.array_equal(k[0], k[1]) and not np.array_equal(k[1], k[2])
    rain = BatchRecipes([(100, 100)], "derain", patch=32, batch=6, seed=0)[0]
    layers = (rain["density"] > 0).sum(1)
    assert int(layers.min()) >= 1 and int(layers.max()) <= 3


def test_recipes_draw_deblur_kernels_from_the_given_sizes():
    """--blur-kernels reaches the device path: kernels of a 5-7 px mixture span 7 px at most, of 31-31 more."""
    def spans(spec):
        kernels = BatchRecipes([(100, 100)], "deblur", patch=32, batch=6, seed=0, blur_kernels=spec)[0]["kernel"]
        out = []
        for one in kernels.numpy():
            rows, cols = np.nonzero(one > 0)
            out.append(max(np.ptp(rows), np.ptp(cols)) + 1)
        return out
    assert max(spans("5-7")) <= 7 and min(spans("31")) > 12
