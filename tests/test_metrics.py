import numpy as np
import pytest

from drcnet.core.metrics import dssim, error_reductions, psnr, rgb_to_y, rmse_from_psnr, ssim


def test_psnr_of_a_constant_offset():
    a = np.full((16, 16, 3), 0.5)
    assert psnr(a, a + 0.1) == pytest.approx(20.0)          # 10 log10(1 / 0.01)
    assert psnr(a, a + 0.01) == pytest.approx(40.0)
    assert psnr(a, a) == float("inf")
    assert psnr(a * 255, a * 255 + 25.5, data_range=255) == pytest.approx(20.0)


def test_y_channel_bt601():
    white, black = np.ones((1, 1, 3)), np.zeros((1, 1, 3))
    assert rgb_to_y(white)[0, 0] * 255 == pytest.approx(235.0)
    assert rgb_to_y(black)[0, 0] * 255 == pytest.approx(16.0)
    a = np.full((8, 8, 3), 0.5)
    # a grey offset of 0.1 moves Y by 0.1 * 219/255
    assert psnr(a, a + 0.1, y_channel=True) == pytest.approx(-20 * np.log10(0.1 * 219 / 255))


def test_ssim_known_values():
    rng = np.random.default_rng(0)
    a = rng.random((32, 32, 3))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, a, y_channel=True) == pytest.approx(1.0)
    assert ssim(a, rng.random((32, 32, 3))) < 0.1
    # y_channel=True scores luma only: a colour change that keeps BT.601 Y leaves SSIM (and PSNR) perfect
    grey = 0.3 + 0.4 * rng.random((32, 32, 3))
    tint = np.array([128.553, -65.481, 0.0]) / 128.553 * 0.1 * rng.random((32, 32, 1))   # zero luma weight
    assert ssim(grey, grey + tint, y_channel=True) == pytest.approx(1.0) and ssim(grey, grey + tint) < 0.99
    assert psnr(grey, grey + tint, y_channel=True) > 100


def test_error_reductions():
    assert rmse_from_psnr(20) == pytest.approx(0.1)
    assert dssim(0.8) == pytest.approx(0.1)
    red = error_reductions((26.0206, 0.9), (20.0, 0.8))     # RMSE 0.05 vs 0.1, DSSIM 0.05 vs 0.1
    assert red["rmse"] == pytest.approx(50.0, abs=1e-3) and red["dssim"] == pytest.approx(50.0)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
