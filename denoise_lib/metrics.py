"""PSNR and SSIM under the course's 8-bit protocol, computed by scikit-image.

Protocol (the evaluation code of Laine et al. 2019 and
Neighbor2Neighbor): the estimate is clipped to [0, 1] and quantised to 8 bits,
``round(255·x̂)/255``, then compared with the clean reference with
``data_range = 1``. Predictions are never min–max normalised. A batch is scored
image by image and the scores are averaged.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .image import ImageError, as_image

__all__ = ["quantize", "psnr", "ssim", "psnr_per_image", "ssim_per_image"]


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to the 8-bit grid: ``round(255·clip(x)) / 255`` (float32)."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def _pairs(estimate, reference):
    est = as_image(estimate, allow_range=True)
    ref = as_image(reference)
    if est.shape != ref.shape:
        raise ImageError(f"estimate shape {tuple(est.shape)} differs from reference {tuple(ref.shape)}")
    est = quantize(est).cpu().numpy().astype(np.float64)
    ref = ref.cpu().numpy().astype(np.float64)
    return est, ref


def psnr_per_image(estimate, reference) -> np.ndarray:
    """PSNR in dB of each image of a batch, under the 8-bit protocol.

    Args:
        estimate: NCHW tensor/array (any float range; it is clipped and quantised).
        reference: the clean images, NCHW in [0, 1], same shape.

    Returns:
        float64 array of shape (N,). Identical images give ``inf``.

    Raises:
        ImageError: shape mismatch, NaN, or a reference outside [0, 1].
    """
    est, ref = _pairs(estimate, reference)
    with np.errstate(divide="ignore"):
        return np.array([peak_signal_noise_ratio(r, e, data_range=1.0) for e, r in zip(est, ref)])


def ssim_per_image(estimate, reference) -> np.ndarray:
    """SSIM of each image of a batch (scikit-image ``structural_similarity``, ``data_range=1``).

    Colour images use ``channel_axis`` (SSIM averaged over channels); the estimate is
    quantised as for :func:`psnr_per_image`. Source: Wang et al. 2004.

    Returns:
        float64 array of shape (N,).
    """
    est, ref = _pairs(estimate, reference)
    out = []
    for e, r in zip(est, ref):
        kw = dict(data_range=1.0)
        side = min(r.shape[-2:])
        if side < 7:  # scikit-image's default 7×7 window does not fit
            if side < 3:
                raise ImageError(f"SSIM needs images of at least 3×3 pixels, got {r.shape[-2:]}")
            kw["win_size"] = side if side % 2 else side - 1
        if r.shape[0] == 1:
            out.append(structural_similarity(r[0], e[0], **kw))
        else:
            out.append(structural_similarity(r, e, channel_axis=0, **kw))
    return np.array(out)


def psnr(estimate, reference) -> float:
    """Mean PSNR (dB) over a batch; see :func:`psnr_per_image`."""
    return float(np.mean(psnr_per_image(estimate, reference)))


def ssim(estimate, reference) -> float:
    """Mean SSIM over a batch; see :func:`ssim_per_image`."""
    return float(np.mean(ssim_per_image(estimate, reference)))
