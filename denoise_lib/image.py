"""Image conversion and validation shared by the whole library.

Convention used everywhere in :mod:`denoise_lib`: an image is a ``torch.float32``
tensor of shape ``(N, C, H, W)`` (NCHW) with ``C`` = 1 (grayscale) or 3 (RGB) and
values in ``[0, 1]``. Noise levels are expressed in the same units, so Gaussian
noise of σ = 25 on the 0–255 scale is ``25 / 255``.

:func:`as_image` is the single entry point that turns user input (NumPy arrays or
tensors, HW / HWC / CHW / NCHW, uint8 / uint16 / float) into that convention, and
raises :class:`ImageError` with a clear message for anything it cannot convert
safely (NaN, infinities, wrong rank, unknown layout, out-of-range floats).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["ImageError", "as_image", "to_numpy", "read_image", "reflect_pad", "crop_to"]


class ImageError(ValueError):
    """Raised when an input cannot be interpreted as an image in [0, 1]."""


_INT_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _channels_last(shape: tuple[int, ...]) -> bool:
    """Decide whether a rank-3 array is HWC (True) or CHW (False)."""
    first, last = shape[0], shape[-1]
    if last in (1, 3) and first not in (1, 3):
        return True
    if first in (1, 3) and last not in (1, 3):
        return False
    if first in (1, 3) and last in (1, 3):
        # e.g. (3, 5, 3): ambiguous; NumPy images are HWC by convention.
        return True
    raise ImageError(
        f"cannot tell the channel axis of an array of shape {shape}: "
        "expected H×W, H×W×C or C×H×W with C = 1 or 3"
    )


def as_image(img, *, channels: int | None = None, allow_range: bool = False,
             device: torch.device | str | None = None) -> torch.Tensor:
    """Convert an image or batch to a float32 NCHW tensor in [0, 1].

    Args:
        img: ``numpy.ndarray`` or ``torch.Tensor``. Accepted layouts: ``(H, W)``,
            ``(H, W, C)`` (NumPy convention), ``(C, H, W)`` (torch convention) and
            ``(N, C, H, W)``, with ``C`` in {1, 3}. An alpha channel (``C`` = 4 in
            HWC) is dropped. Integer types are rescaled: uint8 by 1/255, uint16 by
            1/65535. Floating-point input is taken to be in [0, 1] already.
        channels: if given (1 or 3), convert gray → RGB by replication or
            RGB → gray with ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B).
        allow_range: floating-point values outside [0, 1] raise unless this is
            True (noisy images legitimately leave the range: Gaussian noise is
            never clipped before the network).
        device: target device; default keeps a tensor's device (CPU for NumPy).

    Returns:
        ``torch.float32`` tensor of shape ``(N, C, H, W)``. A tensor input that is
        already float32 NCHW is returned without a copy.

    Raises:
        ImageError: wrong rank, unknown channel layout, unsupported dtype (bool,
            complex, signed or wide integers), NaN or infinite values, floats
            outside [0, 1] (unless ``allow_range``), or an empty image.
    """
    if isinstance(img, (list, tuple)):
        raise ImageError("expected a single array or tensor, got a list; stack it first")
    if isinstance(img, torch.Tensor):
        t = img
        if t.dtype == torch.uint8:
            t = t.to(torch.float32) / 255.0
        elif t.dtype in (torch.float16, torch.bfloat16, torch.float64):
            t = t.to(torch.float32)
        elif t.dtype != torch.float32:
            raise ImageError(f"unsupported tensor dtype {t.dtype}; use uint8 or a float type")
        torch_layout = True
    else:
        a = np.asarray(img)
        if a.dtype in _INT_SCALE:
            a = a.astype(np.float32) / _INT_SCALE[a.dtype]
        elif a.dtype.kind == "f":
            a = a.astype(np.float32, copy=False)
        else:
            raise ImageError(
                f"unsupported array dtype {a.dtype}; use uint8, uint16 or a float type in [0, 1]")
        torch_layout = False
        t = None
        if a.ndim == 3:
            if a.shape[-1] == 4 and a.shape[0] not in (1, 3):
                a = a[..., :3]  # drop alpha
            if _channels_last(a.shape):
                a = np.moveaxis(a, -1, 0)
        elif a.ndim not in (2, 4):
            raise ImageError(f"expected an image of rank 2, 3 or 4, got shape {a.shape}")
        t = torch.from_numpy(np.ascontiguousarray(a))
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        if torch_layout:
            if t.shape[0] not in (1, 3):
                raise ImageError(
                    f"a rank-3 tensor must be C×H×W with C in {{1, 3}}, got shape {tuple(t.shape)}")
        t = t[None]
    elif t.ndim != 4:
        raise ImageError(f"expected an image of rank 2, 3 or 4, got shape {tuple(t.shape)}")
    if t.shape[1] not in (1, 3):
        raise ImageError(f"expected 1 or 3 channels (NCHW), got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ImageError(f"empty image of shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ImageError("image contains NaN or infinite values")
    if not allow_range:
        lo, hi = float(t.min()), float(t.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            hint = " (looks like 0–255 data: divide by 255 or pass uint8)" if hi > 1.5 else ""
            raise ImageError(f"float image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]{hint}")
    if channels is not None:
        if channels not in (1, 3):
            raise ImageError(f"channels must be 1 or 3, got {channels}")
        if t.shape[1] != channels:
            if channels == 3:
                t = t.expand(-1, 3, -1, -1)
            else:
                w = torch.tensor([0.299, 0.587, 0.114], dtype=t.dtype, device=t.device)
                t = (t * w.view(1, 3, 1, 1)).sum(1, keepdim=True)
    if device is not None:
        t = t.to(device)
    return t.contiguous()


def to_numpy(img: torch.Tensor) -> np.ndarray:
    """Convert one NCHW (N = 1) or CHW tensor to a NumPy HW or HWC float32 array.

    Raises:
        ImageError: batch with more than one image, or wrong rank.
    """
    t = img.detach().to("cpu", torch.float32)
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ImageError(f"to_numpy takes one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim != 3:
        raise ImageError(f"expected CHW or 1CHW, got shape {tuple(img.shape)}")
    a = t.numpy()
    return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


def read_image(path: str | Path, *, channels: int | None = None) -> torch.Tensor:
    """Read an image file (PNG, JPEG, TIFF, BMP, ...) as a 1×C×H×W float32 tensor in [0, 1].

    Uses ``skimage.io.imread``; 8- and 16-bit files are rescaled by their bit depth.

    Raises:
        FileNotFoundError: the file does not exist.
        ImageError: the file exists but cannot be decoded (corrupt or not an image).
    """
    import skimage.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        a = skimage.io.imread(path)
    except Exception as e:  # decoders raise many different types
        raise ImageError(f"cannot decode image file {path}: {type(e).__name__}: {e}") from e
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    return as_image(a, channels=channels)


def reflect_pad(x: torch.Tensor, multiple: int | tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad an NCHW tensor on the bottom/right to a multiple of ``multiple`` by reflection.

    ``multiple`` is one int for both axes or ``(mh, mw)`` per axis (1 leaves an axis as it is).

    Works for any size, including sizes smaller than the padding (it reflects
    repeatedly; a dimension of size 1 is replicated).

    Returns:
        The padded tensor and the original ``(H, W)`` for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    mh, mw = (multiple, multiple) if isinstance(multiple, int) else multiple
    ph, pw = (-h) % mh, (-w) % mw
    while ph > 0 or pw > 0:
        ch, cw = x.shape[-2:]
        sh, sw = min(ph, ch - 1), min(pw, cw - 1)
        if (ch == 1 and ph) or (cw == 1 and pw):
            x = torch.nn.functional.pad(x, (0, pw if cw == 1 else 0, 0, ph if ch == 1 else 0),
                                        mode="replicate")
            ph, pw = (0 if ch == 1 else ph), (0 if cw == 1 else pw)
            continue
        x = torch.nn.functional.pad(x, (0, sw, 0, sh), mode="reflect")
        ph, pw = ph - sh, pw - sw
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop an NCHW tensor back to ``size = (H, W)`` (top-left anchored)."""
    return x[..., : size[0], : size[1]]
