"""PSNR / SSIM under the 8-bit protocol (clip, quantise, data_range = 1)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from denoise_lib import metrics
from denoise_lib.image import ImageError


# The library quantises in float32 (round(255·x)/255 as float32); the reference
# values below are computed in float64, hence tolerances well below any meaningful
# difference (a one-grey-level error on one pixel of 32×32 changes PSNR by ~1e-3 dB).
PSNR_TOL = 1e-6
SSIM_TOL = 1e-8


def clean_8bit(shape, seed=0, hi=255) -> np.ndarray:
    """A float32 image on the 8-bit grid, values k/255 with k in [0, hi]."""
    return (np.random.default_rng(seed).integers(0, hi + 1, size=shape) / 255).astype(np.float32)


def noisy(x: np.ndarray, sigma=0.1, seed=1) -> np.ndarray:
    return (x + sigma * np.random.default_rng(seed).standard_normal(x.shape)).astype(np.float32)


def psnr_by_hand(est: np.ndarray, ref: np.ndarray) -> float:
    q = np.round(255 * np.clip(est.astype(np.float64), 0, 1)) / 255
    mse = np.mean((q - ref.astype(np.float64)) ** 2)
    return 10 * math.log10(1 / mse)


def test_psnr_matches_the_protocol_computed_by_hand():
    x = clean_8bit((1, 1, 40, 50))
    y = noisy(x)  # leaves [0, 1], not quantised
    assert metrics.psnr(torch.from_numpy(y), torch.from_numpy(x)) == pytest.approx(
        psnr_by_hand(y, x), abs=PSNR_TOL)


def test_psnr_rgb_matches_the_protocol():
    x = clean_8bit((1, 3, 24, 20), seed=5)
    y = noisy(x, 0.05, seed=6)
    assert metrics.psnr(y, x) == pytest.approx(psnr_by_hand(y, x), abs=PSNR_TOL)


def test_estimate_outside_unit_range_is_clipped():
    x = clean_8bit((1, 1, 16, 16), seed=2)
    x[0, 0, :4] = 1.0
    est = x.copy()
    est[0, 0, 4:8] += 0.2  # some ordinary error
    over = est.copy()
    over[0, 0, :4] = 1.2   # above 1 where the reference is 1: clipped to 1
    under = est.copy()
    under[0, 0, :4] = 1.0
    assert metrics.psnr(over, x) == metrics.psnr(under, x)
    assert metrics.ssim(over, x) == metrics.ssim(under, x)


def test_negative_estimate_is_clipped_to_zero():
    x = np.zeros((1, 1, 8, 8), dtype=np.float32)
    x[..., 4:, :] = 128 / 255
    est = x.copy()
    est[..., :4, :] = -0.3
    assert math.isinf(metrics.psnr(est, x))


def test_quantisation_rounds_small_errors_away():
    x = clean_8bit((1, 1, 16, 16), seed=3, hi=254)
    assert math.isinf(metrics.psnr(x + 0.001, x))  # rounds back onto x
    # an estimate on the 8-bit grid (with errors) scores the same after a +0.001 shift
    est = quantised(noisy(x, 0.05, seed=4)).astype(np.float32)
    p = metrics.psnr(est, x)
    assert math.isfinite(p) and p < 40
    assert metrics.psnr(est + 0.001, x) == p
    assert metrics.psnr(est - 0.001, x) == p


def test_quantisation_changes_the_value_versus_unquantised_psnr():
    x = clean_8bit((1, 1, 32, 32), seed=7)
    y = noisy(x, 0.01, seed=8)
    unquantised = 10 * math.log10(1 / np.mean((np.clip(y, 0, 1).astype(np.float64) - x) ** 2))
    assert metrics.psnr(y, x) != pytest.approx(unquantised, abs=1e-6)


def test_constant_offset_of_one_grey_level_gives_48_13_db():
    x = clean_8bit((1, 1, 32, 32), seed=9, hi=254)
    p = metrics.psnr(x + 1 / 255, x)
    assert p == pytest.approx(20 * math.log10(255), abs=1e-6)
    assert p == pytest.approx(48.13, abs=0.01)


def test_batch_mean_is_mean_of_per_image_values():
    x = clean_8bit((3, 1, 20, 20), seed=10)
    y = np.concatenate([noisy(x[i:i + 1], s, seed=11 + i) for i, s in enumerate((0.02, 0.1, 0.3))])
    per = metrics.psnr_per_image(y, x)
    assert per.shape == (3,)
    for i in range(3):
        assert per[i] == pytest.approx(psnr_by_hand(y[i], x[i]), abs=PSNR_TOL)
    assert metrics.psnr(y, x) == pytest.approx(per.mean())
    # not the PSNR of the pooled MSE
    assert metrics.psnr(y, x) != pytest.approx(psnr_by_hand(y, x), abs=1e-3)
    sp = metrics.ssim_per_image(y, x)
    assert sp.shape == (3,) and metrics.ssim(y, x) == pytest.approx(sp.mean())


def quantised(y):
    return np.round(255 * np.clip(y.astype(np.float64), 0, 1)) / 255


def test_ssim_gray_equals_skimage_on_the_quantised_estimate():
    x = clean_8bit((1, 1, 32, 40), seed=12)
    y = noisy(x, 0.1, seed=13)
    want = structural_similarity(x[0, 0].astype(np.float64), quantised(y[0, 0]), data_range=1.0)
    assert metrics.ssim(y, x) == pytest.approx(want, abs=SSIM_TOL)
    # the quantisation matters here: SSIM of the raw estimate differs
    raw = structural_similarity(x[0, 0].astype(np.float64), np.clip(y[0, 0], 0, 1).astype(np.float64),
                                data_range=1.0)
    assert raw != pytest.approx(want, abs=1e-6)


def test_ssim_rgb_equals_skimage_with_channel_axis():
    x = clean_8bit((1, 3, 32, 24), seed=14)
    y = noisy(x, 0.1, seed=15)
    ref = np.moveaxis(x[0], 0, -1).astype(np.float64)
    est = np.moveaxis(quantised(y[0]), 0, -1)
    want = structural_similarity(ref, est, data_range=1.0, channel_axis=-1)
    assert metrics.ssim(y, x) == pytest.approx(want, abs=SSIM_TOL)


def test_ssim_of_identical_images_is_one():
    x = clean_8bit((1, 1, 16, 16), seed=16)
    assert metrics.ssim(x, x) == pytest.approx(1.0)


def test_ssim_small_images_use_a_smaller_window():
    x = clean_8bit((1, 1, 5, 6), seed=17)
    y = noisy(x, 0.1, seed=18)
    want = structural_similarity(x[0, 0].astype(np.float64), quantised(y[0, 0]), data_range=1.0,
                                 win_size=5)
    assert metrics.ssim(y, x) == pytest.approx(want, abs=SSIM_TOL)


def test_shape_mismatch_raises():
    x = clean_8bit((1, 1, 16, 16))
    with pytest.raises(ImageError, match="differs"):
        metrics.psnr(x[..., :15], x)
    with pytest.raises(ImageError):
        metrics.ssim(x, np.concatenate([x, x]))


def test_reference_outside_unit_range_raises():
    x = clean_8bit((1, 1, 8, 8))
    with pytest.raises(ImageError):
        metrics.psnr(x, x + 0.5)


def test_quantize_helper():
    t = torch.tensor([-0.1, 0.0, 0.5, 0.0021, 0.999, 1.3])
    q = metrics.quantize(t)
    assert torch.allclose(q, torch.tensor([0.0, 0.0, 128 / 255, 1 / 255, 1.0, 1.0]))
