"""Classical denoisers: BM3D (the ``bm3d`` package), non-local means and total variation
(scikit-image), with the noise level known or estimated.

All functions take noisy images as anything :func:`denoise_lib.image.as_image`
accepts (values may leave [0, 1]) and return float32 NCHW tensors. σ is in [0, 1]
units (25/255 for "σ = 25"). When σ is None it is estimated per image and channel
with scikit-image's ``estimate_sigma`` (the wavelet median-absolute-deviation rule
of Donoho & Johnstone 1994) and averaged over the channels.

Sources: BM3D — Dabov et al. 2007, implementation of Mäkinen, Azzari & Foi 2020
(``bm3d.bm3d`` / ``bm3d.bm3d_rgb``); NLM — Buades et al. 2005
(``skimage.restoration.denoise_nl_means``); TV — Rudin, Osher & Fatemi 1992 solved by
Chambolle 2004 (``skimage.restoration.denoise_tv_chambolle``).
"""
from __future__ import annotations

import numpy as np
import torch

from .image import as_image

__all__ = ["estimate_sigma", "bm3d", "nlm", "tv", "CLASSICAL"]


def _hwc(y: torch.Tensor) -> np.ndarray:
    a = y.numpy().astype(np.float64)
    return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


def _back(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a, dtype=np.float32)
    a = a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)
    return torch.from_numpy(np.ascontiguousarray(a))


def estimate_sigma(y) -> np.ndarray:
    """Estimate the Gaussian σ of each noisy image (wavelet MAD, scikit-image).

    Args:
        y: noisy image(s), NCHW or any layout :func:`as_image` accepts.

    Returns:
        float64 array of shape (N,), σ in [0, 1] units (mean over channels).
    """
    from skimage.restoration import estimate_sigma as _est

    y = as_image(y, allow_range=True).cpu()
    return np.array([float(np.mean(_est(_hwc(im), channel_axis=-1 if im.shape[0] == 3 else None)))
                     for im in y])


def _apply(y, sigma, fn) -> torch.Tensor:
    y = as_image(y, allow_range=True).cpu()
    sig = estimate_sigma(y) if sigma is None else np.broadcast_to(np.asarray(sigma, float), (y.shape[0],))
    if np.any(~np.isfinite(sig)) or np.any(sig < 0):
        raise ValueError(f"σ must be finite and ≥ 0, got {sigma}")
    return torch.stack([_back(fn(_hwc(im), float(s), im.shape[0] == 3)) for im, s in zip(y, sig)])


def bm3d(y, sigma: float | None = None) -> torch.Tensor:
    """BM3D denoising (``bm3d.bm3d`` for gray, ``bm3d.bm3d_rgb`` for colour).

    Args:
        y: noisy images, (N, C, H, W) with C in {1, 3} (or any :func:`as_image` layout).
        sigma: Gaussian σ in [0, 1] units, or None to estimate it per image.

    Returns:
        float32 tensor (N, C, H, W).
    """
    import bm3d as _bm3d

    def run(a, s, rgb):
        s = max(s, 1e-4)  # the package divides by σ
        return _bm3d.bm3d_rgb(a, s) if rgb else _bm3d.bm3d(a, s)

    return _apply(y, sigma, run)


def nlm(y, sigma: float | None = None, *, patch_size: int = 5, patch_distance: int = 6,
        h_factor: float = 0.8) -> torch.Tensor:
    """Non-local means (scikit-image ``denoise_nl_means``, fast mode).

    The filtering parameter is ``h = h_factor·σ`` and σ is passed so that
    scikit-image subtracts the expected patch-distance bias (its documented use).

    Args:
        y: noisy images (N, C, H, W). sigma: σ in [0, 1] units or None (estimated).

    Returns:
        float32 tensor (N, C, H, W).
    """
    from skimage.restoration import denoise_nl_means

    def run(a, s, rgb):
        return denoise_nl_means(a, h=h_factor * s, sigma=s, fast_mode=True, patch_size=patch_size,
                                patch_distance=patch_distance, channel_axis=-1 if rgb else None)

    return _apply(y, sigma, run)


def tv(y, sigma: float | None = None, *, weight_factor: float = 1.0) -> torch.Tensor:
    """Total-variation denoising (Chambolle's algorithm, scikit-image ``denoise_tv_chambolle``).

    The regularisation weight scales with the noise: ``weight = weight_factor·σ``.

    Args:
        y: noisy images (N, C, H, W). sigma: σ in [0, 1] units or None (estimated).

    Returns:
        float32 tensor (N, C, H, W).
    """
    from skimage.restoration import denoise_tv_chambolle

    def run(a, s, rgb):
        return denoise_tv_chambolle(a, weight=weight_factor * s, channel_axis=-1 if rgb else None)

    return _apply(y, sigma, run)


#: name → function, as used by the comparison harness.
CLASSICAL = {"bm3d": bm3d, "nlm": nlm, "tv": tv}
