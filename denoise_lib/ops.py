"""Image operations on tensors: warping by a displacement field, Gaussian smoothing, local SSIM.

All functions take and return float NCHW tensors, work on the tensor's device, are
differentiable, and make no host round trip (usable inside a training step).

Flow convention (used by :mod:`denoise_lib.data.motion` and
:mod:`denoise_lib.models.align` too):

* A **flow** is a float tensor of shape ``(N, 2, H, W)`` in **pixels**. Channel 0 is
  the horizontal component ``u`` (along the width, positive to the right), channel 1
  the vertical component ``v`` (along the height, positive downwards).
* :func:`warp` is a **backward** warp: ``warp(image, flow)[n, c, i, j] =
  image[n, c, i + v[n, i, j], j + u[n, i, j]]``, interpolated between pixel centres
  (pixel ``(i, j)`` sits at integer coordinates; ``align_corners=True`` in
  :func:`torch.nn.functional.grid_sample`). A constant flow ``(u, v) = (2, −1)``
  moves the content 2 pixels to the left and 1 pixel down.

Functions:

* :func:`warp`, :func:`valid_mask` — the warp and where it samples inside the image;
* :func:`gaussian_smooth` — a separable Gaussian filter;
* :func:`local_ssim` — the per-pixel SSIM map of Wang et al. (2004), equal to
  ``skimage.metrics.structural_similarity(..., full=True)`` with its defaults.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .image import ImageError

__all__ = ["warp", "valid_mask", "gaussian_smooth", "local_ssim"]

_PADDING = ("border", "zeros", "reflection")
_MODES = ("bilinear", "bicubic", "nearest")


def check_flow(image: torch.Tensor, flow: torch.Tensor) -> None:
    """Raise unless ``image`` is (N, C, H, W) and ``flow`` an (N or 1, 2, H, W) float field for it.

    Raises:
        ImageError: ``image`` is not a 4-d tensor. ValueError: bad flow shape or dtype.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ImageError(f"warp expects an (N, C, H, W) image tensor, got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    if not isinstance(flow, torch.Tensor) or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"a flow must be an (N, 2, H, W) tensor of displacements in pixels, got "
                         f"{tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__}")
    if flow.shape[0] not in (1, image.shape[0]) or flow.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"flow of shape {tuple(flow.shape)} does not fit an image of shape "
                         f"{tuple(image.shape)} (needs (N or 1, 2, H, W) with the image's H, W)")
    if not image.is_floating_point() or not flow.is_floating_point():
        raise ValueError("warp needs floating-point image and flow tensors")


def _sample_grid(flow: torch.Tensor) -> torch.Tensor:
    """Pixel displacements → the normalised (x, y) sampling grid of ``grid_sample`` (N, H, W, 2)."""
    n, _, h, w = flow.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    # align_corners=True: pixel 0 ↦ −1, pixel W−1 ↦ +1 (a 1-pixel axis maps to 0)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - (1.0 if w > 1 else 0.0)
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - (1.0 if h > 1 else 0.0)
    return torch.stack((gx, gy), dim=-1)


def warp(image: torch.Tensor, flow: torch.Tensor, *, mode: str = "bilinear",
         padding: str = "border") -> torch.Tensor:
    """Backward-warp ``image`` by a displacement field (differentiable in both arguments).

    ``out[n, c, i, j] = image[n, c, i + flow[n, 1, i, j], j + flow[n, 0, i, j]]``,
    interpolated by :func:`torch.nn.functional.grid_sample` (``align_corners=True``:
    pixel centres at integer coordinates, so a zero flow returns the image exactly).

    Args:
        image: (N, C, H, W) float tensor (any range; not clipped).
        flow: (N, 2, H, W) or (1, 2, H, W) float tensor of displacements **in pixels**;
            channel 0 horizontal (+ right), channel 1 vertical (+ down).
        mode: ``"bilinear"`` (default), ``"bicubic"`` (sharper; may overshoot the
            input range) or ``"nearest"``.
        padding: what a sample point outside the image reads: ``"border"`` (default:
            the nearest edge pixel), ``"zeros"`` or ``"reflection"``. Use
            :func:`valid_mask` to find those pixels.

    Returns:
        (N, C, H, W) tensor, same dtype and device as ``image``.

    Raises:
        ImageError: ``image`` is not a 4-d tensor. ValueError: flow shape mismatch,
        integer tensors, unknown ``mode`` or ``padding``.
    """
    check_flow(image, flow)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if padding not in _PADDING:
        raise ValueError(f"padding must be one of {', '.join(_PADDING)}, got {padding!r}")
    flow = flow.to(image.dtype).expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, _sample_grid(flow), mode=mode, padding_mode=padding, align_corners=True)


def valid_mask(flow: torch.Tensor) -> torch.Tensor:
    """Where a warp by ``flow`` samples inside the image: (N, 1, H, W) bool.

    Pixel ``(i, j)`` is valid when ``0 ≤ i + v ≤ H − 1`` and ``0 ≤ j + u ≤ W − 1``
    (``flow`` as in :func:`warp`, tolerance 1e-4 px); elsewhere the warp reads padding.

    Raises:
        ValueError: ``flow`` is not an (N, 2, H, W) tensor.
    """
    if not isinstance(flow, torch.Tensor) or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"a flow must be an (N, 2, H, W) tensor, got "
                         f"{tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__}")
    n, _, h, w = flow.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1) + flow[:, 1]
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w) + flow[:, 0]
    eps = 1e-4
    ok = (ys >= -eps) & (ys <= h - 1 + eps) & (xs >= -eps) & (xs <= w - 1 + eps)
    return ok[:, None]


def gaussian_smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter of standard deviation ``sigma`` pixels (reflect borders).

    Args:
        x: (N, C, H, W) float tensor.
        sigma: ≥ 0, in pixels; 0 returns ``x`` itself. The kernel has radius
            ``ceil(3σ)``, clipped to ``size − 1`` along each axis and renormalised.

    Returns:
        (N, C, H, W) tensor, same dtype and device.

    Raises:
        ValueError: negative or non-finite ``sigma``, wrong rank.
    """
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number ≥ 0, got {sigma!r}")
    if x.ndim != 4:
        raise ValueError(f"gaussian_smooth expects (N, C, H, W), got {tuple(x.shape)}")
    if sigma == 0:
        return x
    n, c, h, w = x.shape
    r = int(math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    y = x.reshape(n * c, 1, h, w)
    rh, rw = min(r, h - 1), min(r, w - 1)
    if rw > 0:
        kw = k[r - rw:r + rw + 1]
        y = F.conv2d(F.pad(y, (rw, rw, 0, 0), mode="reflect"), (kw / kw.sum()).view(1, 1, 1, -1))
    if rh > 0:
        kh = k[r - rh:r + rh + 1]
        y = F.conv2d(F.pad(y, (0, 0, rh, rh), mode="reflect"), (kh / kh.sum()).view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def _symmetric_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    """Half-sample symmetric padding by ``r < min(H, W)`` pixels (``d c b a | a b c d | d c b a``).

    This is scipy.ndimage's ``mode="reflect"``; torch's ``"reflect"`` mode omits the edge sample.
    """
    if r == 0:
        return x
    x = torch.cat([x[..., :r].flip(-1), x, x[..., -r:].flip(-1)], dim=-1)
    return torch.cat([x[..., :r, :].flip(-2), x, x[..., -r:, :].flip(-2)], dim=-2)


def local_ssim(a: torch.Tensor, b: torch.Tensor, *, win_size: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM map of two image batches, averaged over channels.

    Wang, Bovik, Sheikh & Simoncelli (2004), Eq. (13), with the local statistics of
    scikit-image's ``structural_similarity(..., full=True)`` defaults: means, variances
    and covariance over a uniform ``win_size × win_size`` window, covariances
    normalised by ``NP/(NP − 1)`` (sample covariance, ``NP = win_size²``), constants
    ``C1 = (0.01·data_range)²``, ``C2 = (0.03·data_range)²``, borders padded by
    half-sample symmetric reflection (scipy's ``mode="reflect"``)::

        SSIM = (2 μa μb + C1)(2 σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))

    A window larger than the image shrinks to the largest odd side that fits (≥ 3).
    Computed in the input dtype on the input's device, differentiable, no host round trip.

    Args:
        a, b: (N, C, H, W) float tensors of the same shape, H, W ≥ 3.
        win_size: odd window side ≥ 3.
        data_range: the dynamic range of the images (1 for [0, 1] images), > 0.

    Returns:
        (N, 1, H, W) tensor (dtype and device of ``a``), values in [−1, 1].

    Raises:
        ValueError: shape mismatch, wrong rank, images smaller than 3×3, even or too
        small ``win_size``, non-positive ``data_range``.
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.ndim != 4 or a.shape != b.shape:
        raise ValueError(f"local_ssim needs two (N, C, H, W) tensors of the same shape, got "
                         f"{tuple(getattr(a, 'shape', ()))} and {tuple(getattr(b, 'shape', ()))}")
    if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd integer ≥ 3, got {win_size!r}")
    if not (isinstance(data_range, (int, float)) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    side = min(a.shape[-2:])
    if side < 3:
        raise ValueError(f"local SSIM needs images of at least 3×3 pixels, got {tuple(a.shape[-2:])}")
    win = min(win_size, side if side % 2 else side - 1)
    n, c, h, w = a.shape
    b = b.to(a.dtype)
    # the five local statistics of every (image, channel) in one pooling call
    stats = torch.stack([a, b, a * a, b * b, a * b], dim=2).reshape(n, c * 5, h, w)
    mean = F.avg_pool2d(_symmetric_pad(stats, win // 2), kernel_size=win, stride=1).reshape(n, c, 5, h, w)
    ua, ub, uaa, ubb, uab = mean.unbind(2)
    cov_norm = win * win / (win * win - 1.0)
    va, vb, vab = cov_norm * (uaa - ua * ua), cov_norm * (ubb - ub * ub), cov_norm * (uab - ua * ub)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua * ua + ub * ub + c1) * (va + vb + c2))
    return s.mean(dim=1, keepdim=True)
