"""Classical denoisers: BM3D (the ``bm3d`` package), non-local means and total variation
(scikit-image), with the noise level known or estimated.

All functions take noisy images as anything :func:`denoise_lib.image.as_image`
accepts (values may leave [0, 1]) and return float32 NCHW tensors of the same shape,
clipped to [0, 1] (the range of the clean image; the metrics clip as well). σ is in
[0, 1] units (25/255 for "σ = 25"). When σ is None it is estimated per image and channel
with scikit-image's ``estimate_sigma`` (the wavelet median-absolute-deviation rule
of Donoho & Johnstone 1994) and averaged over the channels.

Inputs are checked before any denoising starts, and every failure is a ``ValueError``
naming the argument: images that :func:`as_image` refuses (NaN or infinite pixels, wrong
rank or channel count, unsupported dtype, empty) raise :class:`~denoise_lib.image.ImageError`;
σ must be a finite number in [0, 1] (or one per image) — a σ above 1 is taken to be on the
0–255 scale and refused with the hint ``25/255`` —, and with σ given, pixels more than
1 + 10σ from 0.5 (0–255 data) are refused too. An estimated σ above 1 is refused the same
way when the pixels leave [0, 1] by more than 10, and otherwise (tiny or pure-noise
images) capped at 1. Degenerate inputs get the exact answer:
σ = 0 returns the input, and a 1×1 image is returned as it is (one pixel has nothing to
average with, so every σ gives the input back).

Sources: BM3D — Dabov et al. 2007, implementation of Mäkinen, Azzari & Foi 2020
(``bm3d.bm3d`` / ``bm3d.bm3d_rgb``); NLM — Buades et al. 2005
(``skimage.restoration.denoise_nl_means``); TV — Rudin, Osher & Fatemi 1992 solved by
Chambolle 2004 (``skimage.restoration.denoise_tv_chambolle``).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch

from .image import ImageError, as_image
from .noise import _sigma_scale_error

__all__ = ["estimate_sigma", "bm3d", "nlm", "tv", "CLASSICAL"]

#: BM3D's block is 8×8: smaller images are padded by reflection to this size and cropped back.
BM3D_MIN_SIZE = 8
#: TV weights below this are treated as 0 (the solution moves each pixel by O(weight) only,
#: and scikit-image divides by the weight).
TV_MIN_WEIGHT = 1e-12


def _hwc(y: torch.Tensor) -> np.ndarray:
    a = y.numpy().astype(np.float64)
    return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


def _back(a: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """A denoiser's H×W or H×W×C result as a float32 CHW tensor clipped to [0, 1].

    ``shape`` is the input's H×W(×C): scikit-image drops singleton axes (1×W images), and
    the reshape restores them.
    """
    a = np.clip(np.reshape(np.asarray(a, dtype=np.float64), shape), 0, 1).astype(np.float32)
    a = a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)
    return torch.from_numpy(np.ascontiguousarray(a))


def _image(y, fname: str) -> torch.Tensor:
    try:
        return as_image(y, allow_range=True).cpu()
    except ImageError as e:
        raise ImageError(f"{fname}: bad image y: {e}") from None


def _estimate_one(im: torch.Tensor) -> float:
    from skimage.restoration import estimate_sigma as _est

    a = _hwc(im)
    if a.shape[0] == 1 or a.shape[1] == 1:  # a line of pixels: the 1-D rule along it
        a = a.reshape((-1, 3) if im.shape[0] == 3 else -1)
    with warnings.catch_warnings():  # its guess that a narrow image might be colour; ours is explicit
        warnings.filterwarnings("ignore", message="image is size", category=UserWarning)
        return float(np.mean(_est(a, channel_axis=-1 if im.shape[0] == 3 else None)))


def estimate_sigma(y) -> np.ndarray:
    """Estimate the Gaussian σ of each noisy image (wavelet MAD, scikit-image).

    A 1×W or H×1 image is treated as a 1-D signal (the rule is then that of Donoho &
    Johnstone's 1-D setting); short signals give rough estimates.

    Args:
        y: noisy image(s), NCHW or any layout :func:`as_image` accepts.

    Returns:
        float64 array of shape (N,), σ in [0, 1] units (mean over channels).

    Raises:
        ValueError: an image :func:`as_image` refuses, or a 1×1 image (nothing to estimate from).
    """
    y = _image(y, "estimate_sigma")
    if y.shape[-2:] == (1, 1):
        raise ValueError("estimate_sigma: a 1×1 image has no neighbours to estimate σ from; pass sigma")
    return np.array([_estimate_one(im) for im in y])


def _sigmas(sigma, y: torch.Tensor, fname: str) -> np.ndarray:
    """Validated per-image σ, shape (N,): given (scalar or one per image) or estimated."""
    n = y.shape[0]
    if sigma is None:
        if y.shape[-2:] == (1, 1):
            return np.zeros(n)  # unused: a 1×1 image is returned as it is for every σ
        sig = estimate_sigma(y)
        reach = (y - 0.5).abs().amax(dim=(1, 2, 3)).double().numpy()
        bad = ~np.isfinite(sig) | ((sig > 1) & (reach > 11))  # σ̂ > 1 and values > 10 outside [0, 1]
        if np.any(bad):
            i = int(np.argmax(bad))
            lo, hi = float(y[i].min()), float(y[i].max())
            raise ValueError(f"{fname}: the estimated σ of image {i} is {sig[i]:.4g}, above 1 (σ is in [0, 1] "
                             f"units), and its values reach [{lo:.4g}, {hi:.4g}]: it looks like 0–255 data; "
                             "divide it by 255 (or pass uint8), or pass sigma")
        return np.minimum(sig, 1.0)  # σ̂ > 1 on [0, 1] data: tiny or pure-noise images
    if isinstance(sigma, (bool, str, bytes)):
        raise ValueError(f"{fname}: sigma must be a number in [0, 1], one per image, or None; got {sigma!r}")
    try:
        raw = np.asarray(sigma.detach().cpu() if isinstance(sigma, torch.Tensor) else sigma, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{fname}: sigma must be a number in [0, 1], one per image, or None; got {sigma!r}") \
            from None
    if raw.ndim > 1 or (raw.ndim == 1 and raw.shape[0] not in (1, n)):
        raise ValueError(f"{fname}: sigma must be one number or one per image ({n}), got shape {raw.shape}")
    sig = np.broadcast_to(raw.reshape(-1), (n,)).copy()
    if not np.all(np.isfinite(sig)) or np.any(sig < 0):
        raise ValueError(f"{fname}: σ must be finite and in [0, 1] (image units), got {sigma}")
    if np.any(sig > 1):
        raise _sigma_scale_error(f"{fname}: σ", float(np.max(sig)))
    reach = (y - 0.5).abs().amax(dim=(1, 2, 3)).double().numpy()
    far = reach > 1 + 10 * sig  # > 10σ outside [0, 1]: no Gaussian noise of this σ does that
    if np.any(far):
        i = int(np.argmax(far))
        raise ValueError(f"{fname}: image {i} has values in [{float(y[i].min()):.4g}, {float(y[i].max()):.4g}], "
                         f"more than 10σ outside [0, 1] for σ = {sig[i]:.4g}: it looks like 0–255 data; "
                         "divide it by 255 (or pass uint8)")
    return sig


def _apply(y, sigma, fn, fname: str) -> torch.Tensor:
    """Run ``fn(hwc_array, σ, rgb)`` on each image; σ = 0 and 1×1 images return the input (clipped)."""
    y = _image(y, fname)
    sig = _sigmas(sigma, y, fname)
    out = []
    for im, s in zip(y, sig):
        if s == 0 or im.shape[-2:] == (1, 1):
            out.append(im.clamp(0, 1))
            continue
        a = _hwc(im)
        out.append(_back(fn(a, float(s), im.shape[0] == 3), a.shape))
    return torch.stack(out)


def _check_int(name: str, v, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise ValueError(f"{name} must be an integer ≥ {lo}, got {v!r}")


def _check_real(name: str, v, *, positive: bool) -> None:
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or not (v > 0 if positive else v >= 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '≥ 0'}, got {v!r}")


def bm3d(y, sigma: float | None = None) -> torch.Tensor:
    """BM3D denoising (``bm3d.bm3d`` for gray, ``bm3d.bm3d_rgb`` for colour).

    Images smaller than BM3D's 8×8 block along either axis are padded by symmetric
    reflection to 8 pixels and the result is cropped back; an image that would be exactly
    8×8 is padded to 9×9 instead (``bm3d`` 4.0.3 crashes the Python process on 8×8 input). σ below 1e-4 is raised to 1e-4 (the package
    divides by σ); σ = 0 returns the input.

    Args:
        y: noisy images, (N, C, H, W) with C in {1, 3} (or any :func:`as_image` layout).
        sigma: Gaussian σ in [0, 1] units (one number or one per image), or None to
            estimate it per image.

    Returns:
        float32 tensor (N, C, H, W) in [0, 1].

    Raises:
        ValueError: bad image or σ (see the module docstring).
    """
    import bm3d as _bm3d

    def run(a, s, rgb):
        s = max(s, 1e-4)  # the package divides by σ
        h, w = a.shape[:2]
        th, tw = max(h, BM3D_MIN_SIZE), max(w, BM3D_MIN_SIZE)
        if (th, tw) == (BM3D_MIN_SIZE, BM3D_MIN_SIZE):
            th, tw = th + 1, tw + 1
        pad = [((th - h) // 2, th - h - (th - h) // 2), ((tw - w) // 2, tw - w - (tw - w) // 2)]
        p = np.pad(a, pad + [(0, 0)] * (a.ndim - 2), mode="symmetric")
        d = _bm3d.bm3d_rgb(p, s) if rgb else _bm3d.bm3d(p, s)
        return np.asarray(d)[pad[0][0]:pad[0][0] + h, pad[1][0]:pad[1][0] + w]

    return _apply(y, sigma, run, "bm3d")


def nlm(y, sigma: float | None = None, *, patch_size: int = 5, patch_distance: int = 6,
        h_factor: float = 0.8) -> torch.Tensor:
    """Non-local means (scikit-image ``denoise_nl_means``, fast mode).

    The filtering parameter is ``h = h_factor·σ`` and σ is passed so that
    scikit-image subtracts the expected patch-distance bias (its documented use).
    Images of any size ≥ 1×1 work (scikit-image pads by reflection).

    Args:
        y: noisy images (N, C, H, W). sigma: σ in [0, 1] units (one number or one per
            image) or None (estimated). patch_size, patch_distance: integers ≥ 1.
            h_factor: finite, > 0.

    Returns:
        float32 tensor (N, C, H, W) in [0, 1].

    Raises:
        ValueError: bad image, σ or parameter, before any work starts.
    """
    from skimage.restoration import denoise_nl_means

    _check_int("nlm: patch_size", patch_size, 1)
    _check_int("nlm: patch_distance", patch_distance, 1)
    _check_real("nlm: h_factor", h_factor, positive=True)

    def run(a, s, rgb):
        return denoise_nl_means(a, h=h_factor * s, sigma=s, fast_mode=True, patch_size=patch_size,
                                patch_distance=patch_distance, channel_axis=-1 if rgb else None)

    return _apply(y, sigma, run, "nlm")


def tv(y, sigma: float | None = None, *, weight_factor: float = 1.0) -> torch.Tensor:
    """Total-variation denoising (Chambolle's algorithm, scikit-image ``denoise_tv_chambolle``).

    The regularisation weight scales with the noise: ``weight = weight_factor·σ``. A weight
    of 0 (σ = 0 or ``weight_factor = 0``) returns the input, the exact ROF minimiser; so do
    weights below :data:`TV_MIN_WEIGHT` (1e-12), which change no pixel by more than a few
    times the weight.

    Args:
        y: noisy images (N, C, H, W). sigma: σ in [0, 1] units (one number or one per
            image) or None (estimated). weight_factor: finite, ≥ 0.

    Returns:
        float32 tensor (N, C, H, W) in [0, 1].

    Raises:
        ValueError: bad image, σ or weight_factor, before any work starts.
    """
    from skimage.restoration import denoise_tv_chambolle

    _check_real("tv: weight_factor", weight_factor, positive=False)

    def run(a, s, rgb):
        weight = weight_factor * s
        if weight < TV_MIN_WEIGHT:
            return a
        return denoise_tv_chambolle(a, weight=weight, channel_axis=-1 if rgb else None)

    return _apply(y, sigma, run, "tv")


#: name → function, as used by the comparison harness.
CLASSICAL = {"bm3d": bm3d, "nlm": nlm, "tv": tv}
