"""Classical denoisers (BM3D, NLM, TV) on small crops of real images, σ known and estimated."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from denoise_lib import classical, metrics
from denoise_lib.noise import Gaussian

SIGMA = 25 / 255


def crop(rgb: bool) -> torch.Tensor:
    if rgb:
        a = skimage.data.astronaut()[100:164, 100:164]
        return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    a = skimage.data.camera()[250:314, 200:264]
    return torch.from_numpy(a.astype(np.float32) / 255)[None, None]


@pytest.fixture(scope="module", params=[False, True], ids=["gray", "rgb"])
def pair(request):
    x = crop(request.param)
    y = Gaussian(SIGMA)(x, torch.Generator().manual_seed(0))
    return x, y


@pytest.mark.parametrize("name", ["bm3d", "nlm", "tv"])
def test_known_sigma_improves_psnr_by_2db(pair, name):
    x, y = pair
    out = classical.CLASSICAL[name](y, SIGMA)
    assert out.shape == y.shape and out.dtype == torch.float32
    gain = metrics.psnr(out, x) - metrics.psnr(y, x)
    assert gain >= 2.0, f"{name}: {gain:.2f} dB"


def test_estimate_sigma_within_20_percent(pair):
    _, y = pair
    est = classical.estimate_sigma(y)
    assert est.shape == (1,)
    assert abs(est[0] - SIGMA) < 0.2 * SIGMA, est[0] * 255


def test_estimate_sigma_per_image_in_a_batch():
    x = crop(False)
    y = torch.cat([Gaussian(s)(x, torch.Generator().manual_seed(1)) for s in (10 / 255, 40 / 255)])
    est = classical.estimate_sigma(y)
    assert est.shape == (2,)
    assert est[0] < est[1]
    assert abs(est[1] - 40 / 255) < 0.2 * 40 / 255


@pytest.mark.parametrize("name", ["nlm", "tv"])
def test_unknown_sigma_is_estimated(pair, name):
    x, y = pair
    out = classical.CLASSICAL[name](y, None)
    assert out.shape == y.shape
    assert metrics.psnr(out, x) - metrics.psnr(y, x) >= 2.0


def test_bm3d_with_unknown_sigma_runs_on_gray():
    x = crop(False)[..., :32, :32]
    y = Gaussian(SIGMA)(x, torch.Generator().manual_seed(2))
    out = classical.bm3d(y, None)
    assert out.shape == y.shape and torch.isfinite(out).all()
    assert metrics.psnr(out, x) > metrics.psnr(y, x)


def test_classical_accepts_numpy_hwc_input():
    y = np.clip(np.random.default_rng(0).normal(0.5, 0.1, size=(16, 16, 3)), 0, 1).astype(np.float32)
    out = classical.tv(y, 0.1)
    assert out.shape == (1, 3, 16, 16)


@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_bad_sigma_raises(bad):
    with pytest.raises(ValueError):
        classical.tv(torch.rand(1, 1, 8, 8), bad)
