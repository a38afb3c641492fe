"""Image conversion, validation and image files, shared by the whole library.

Convention used everywhere in :mod:`denoise_lib`: an image is a ``torch.float32``
tensor of shape ``(N, C, H, W)`` (NCHW) with ``C`` = 1 (grayscale) or 3 (RGB) and
values in ``[0, 1]``. Noise levels are expressed in the same units, so Gaussian
noise of σ = 25 on the 0–255 scale is ``25 / 255``.

:func:`as_image` turns arrays and tensors into that convention by one fixed rule
(torch tensors: CHW / NCHW; NumPy arrays: HW / HWC as in scikit-image, see
``channel_axis``); the layout is never guessed from the sizes. :func:`read_image`,
:func:`image_info` and :func:`write_image` handle files with Pillow (plus tifffile
and pypng for the 16-bit colour PNGs Pillow cannot hold). Anything that
cannot be converted safely raises :class:`ImageError` with a message naming the problem.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["ImageError", "ImageInfo", "as_image", "to_numpy", "read_image", "read_alpha", "image_info",
           "write_image", "reflect_pad", "crop_to"]


class ImageError(ValueError):
    """Raised when an input cannot be interpreted as an image in [0, 1]."""


class ImageFileNotFoundError(ImageError, FileNotFoundError):
    """A missing image file: both an :class:`ImageError` and a :class:`FileNotFoundError`."""


_INT_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_LUMA = (0.299, 0.587, 0.114)


def _alpha_warning(where: str, stacklevel: int, note: str = "") -> None:
    warnings.warn(f"{where}: alpha channel dropped (denoise_lib images are gray or RGB{note})",
                  UserWarning, stacklevel=stacklevel + 1)


def _numpy_nchw(a: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """Apply the NumPy layout rule; returns an (N, C, H, W) view."""
    if a.ndim == 2:
        return a[None, None]
    if channel_axis is None:
        raise ImageError(f"channel_axis=None means a 2-D (H, W) gray image, got shape {a.shape}")
    if a.ndim == 3:
        if not -3 <= channel_axis < 3:
            raise ImageError(f"channel_axis={channel_axis} is out of range for an array of shape {a.shape}")
        out = np.moveaxis(a, channel_axis, 0)[None]
        if out.shape[1] not in (1, 3, 4):
            hint = (" (for a C×H×W array pass channel_axis=0)"
                    if channel_axis % 3 == 2 and a.shape[0] in (1, 3, 4) else "")
            raise ImageError(f"an array of shape {a.shape} with channel_axis={channel_axis} has "
                             f"{out.shape[1]} channels; expected 1, 3 or 4 (RGBA){hint}")
        return out
    if a.ndim == 4:
        return a
    raise ImageError(f"expected a NumPy image of rank 2 (H, W), 3 (H, W, C) or 4 (N, C, H, W), "
                     f"got shape {a.shape}")


def as_image(img, *, channels: int | None = None, channel_axis: int | None = -1, allow_range: bool = False,
             device: torch.device | str | None = None) -> torch.Tensor:
    """Convert an image or batch to a float32 NCHW tensor in [0, 1].

    Layout rule (never guessed from the sizes):

    * ``torch.Tensor``: ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)`` (torch order), C in {1, 3}.
    * ``numpy.ndarray`` (scikit-image order): ``(H, W)`` gray; rank 3 holds the channels on
      ``channel_axis`` (default -1: ``(H, W, C)``; 0 for ``(C, H, W)``); rank 4 is an
      ``(N, C, H, W)`` batch, as ``Tensor.numpy()`` gives. C in {1, 3, 4}; C = 4 is RGBA and
      the alpha channel is dropped with a :class:`UserWarning`.

    Dtypes: uint8 is divided by 255, uint16 (NumPy) by 65535, bool (NumPy) maps to {0, 1};
    floating-point values must already be in [0, 1] and finite.

    Args:
        img: ``numpy.ndarray`` or ``torch.Tensor`` as above.
        channels: if given (1 or 3), convert gray → RGB by replication or
            RGB → gray with ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B).
        channel_axis: channel axis of a rank-3 NumPy array (-1 or 2: HWC, 0: CHW);
            ``None`` accepts only ``(H, W)`` arrays. Tensors ignore it.
        allow_range: floating-point values outside [0, 1] raise unless this is
            True (noisy images legitimately leave the range).
        device: target device; default keeps a tensor's device (CPU for NumPy).

    Returns:
        ``torch.float32`` tensor of shape ``(N, C, H, W)``. A tensor input that is
        already float32 NCHW is returned without a copy.

    Raises:
        ImageError: a list, wrong rank, a channel count other than 1/3 (or 4 for
            NumPy), unsupported dtype (complex, signed or wide integers; bool and
            uint16 tensors), NaN or infinite values, floats outside [0, 1] (unless
            ``allow_range``), or an empty image.
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
        if t.ndim == 2:
            t = t[None, None]
        elif t.ndim == 3:
            t = t[None]
        elif t.ndim != 4:
            raise ImageError(f"expected a tensor of rank 2, 3 or 4 (H×W, C×H×W, N×C×H×W), "
                             f"got shape {tuple(t.shape)}")
        if t.shape[1] not in (1, 3):
            raise ImageError(f"a tensor must be (N×)C×H×W with C in {{1, 3}}, got shape {tuple(img.shape)}")
    else:
        a = np.asarray(img)
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        if a.dtype in _INT_SCALE:
            a = a.astype(np.float32) / _INT_SCALE[a.dtype]
        elif a.dtype == bool or a.dtype.kind == "f":
            a = a.astype(np.float32, copy=False)
        else:
            raise ImageError(
                f"unsupported array dtype {a.dtype}; use uint8, uint16, bool or a float type in [0, 1]")
        a = _numpy_nchw(a, channel_axis)
        if a.shape[1] not in (1, 3, 4):
            raise ImageError(f"an (N, C, H, W) array needs C in {{1, 3, 4}}, got shape {a.shape}")
        if a.shape[1] == 4:
            _alpha_warning(f"array of shape {np.shape(img)}", 2)
            a = a[:, :3]
        t = torch.from_numpy(np.ascontiguousarray(a))
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
                w = torch.tensor(_LUMA, dtype=t.dtype, device=t.device)
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


# --------------------------------------------------------------------------- files

@dataclass(frozen=True)
class ImageInfo:
    """What :func:`image_info` reports about an image file (first page for multi-page files).

    Attributes:
        format: Pillow's format name (``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"GIF"``, ...).
        bit_depth: bits per sample as stored (1, 8, 16 or 32).
        channels: colour channels :func:`read_image` returns, 1 or 3 (alpha not counted).
        has_alpha: the file holds an alpha channel (or a transparent palette entry).
        mode: Pillow's mode (``"P"``, ``"CMYK"``, ``"I;16"``, ...); ``"L;16"``, ``"LA;16"``,
            ``"RGB;16"``, ``"RGBA;16"`` or ``";F"``-suffixed names for what Pillow cannot hold.
        pages: number of pages (TIFF) or frames (GIF, APNG, ...).
        size: ``(H, W)`` as stored, before the EXIF orientation.
    """

    format: str
    bit_depth: int
    channels: int
    has_alpha: bool
    mode: str
    pages: int
    size: tuple[int, int]


_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR = {0: (1, False), 2: (3, False), 4: (1, True), 6: (3, True)}  # colour type → (channels, alpha)
# EXIF orientation 2–8 → the array operation that undoes it (as PIL.ImageOps.exif_transpose)
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}
_PIL_MODES = {  # Pillow mode → (mode to convert to, channels, alpha, bit depth)
    "1": ("1", 1, False, 1), "L": ("L", 1, False, 8), "LA": ("LA", 1, True, 8), "La": ("LA", 1, True, 8),
    "P": ("RGB", 3, False, 8), "PA": ("RGBA", 3, True, 8), "RGB": ("RGB", 3, False, 8),
    "RGBA": ("RGBA", 3, True, 8), "RGBa": ("RGBA", 3, True, 8), "RGBX": ("RGB", 3, False, 8),
    "CMYK": ("RGB", 3, False, 8), "YCbCr": ("RGB", 3, False, 8), "LAB": ("RGB", 3, False, 8),
    "HSV": ("RGB", 3, False, 8), "I;16": ("I;16", 1, False, 16), "I;16L": ("I;16L", 1, False, 16),
    "I;16B": ("I;16B", 1, False, 16), "I;16N": ("I;16N", 1, False, 16), "I": ("I", 1, False, 32),
    "F": ("F", 1, False, 32),
}


def _palette_alpha(im) -> bool:
    return "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")


def _check_path(path) -> Path:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ImageError(f"expected the path of an image file, got {type(path).__name__}")
    s = os.fsdecode(os.fspath(path))
    if not s.strip():
        raise ImageError("empty path: give the path of an image file")
    p = Path(s).expanduser()
    if p.is_dir():
        raise ImageError(f"{p} is a folder, not an image file (denoise_lib.data.load_folder reads folders)")
    if not p.exists():
        raise ImageFileNotFoundError(f"image file not found: {p}")
    if not p.is_file():
        raise ImageError(f"{p} is not a regular file")
    if p.stat().st_size == 0:
        raise ImageError(f"{p} is an empty (0-byte) file, not an image")
    return p


class _Source:
    """An image file: its :class:`ImageInfo` and a reader of one page.

    ``read(k)`` returns an HW / HWC array (bool, uint8, uint16, float32) with alpha,
    if any, as the last channel, EXIF orientation applied.
    """

    def __init__(self, p: Path):
        from PIL import Image, UnidentifiedImageError

        self.path = p
        with open(p, "rb") as f:
            head = f.read(33)
        try:
            with Image.open(p) as im:
                self.kind, self.info = self._probe_pil(im, head)
        except UnidentifiedImageError as e:
            if head[:4] not in _TIFF_MAGIC:
                raise ImageError(f"{p} is not an image file Pillow can read") from e
            self.kind, self.info = "tiff", None
        except ImageError:
            raise
        except Exception as e:
            raise ImageError(f"cannot decode image file {p}: {type(e).__name__}: {e}") from e
        if self.kind == "tiff":
            self.info = self._guard(self._probe_tiff)

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except ImageError:
            raise
        except Exception as e:
            raise ImageError(f"cannot decode image file {self.path}: {type(e).__name__}: {e}") from e

    def _probe_pil(self, im, head: bytes) -> tuple[str, ImageInfo]:
        n = int(getattr(im, "n_frames", 1))
        size = (im.height, im.width)
        if head[:8] == _PNG_MAGIC and head[12:16] == b"IHDR" and head[24] == 16 and head[25] != 0:
            c, alpha = _PNG_COLOUR.get(head[25], (3, False))
            name = ("L" if c == 1 else "RGB") + ("A" if alpha else "") + ";16"
            return "png16", ImageInfo("PNG", 16, c, alpha, name, n, size)
        if im.format == "TIFF":
            bits = im.tag_v2.get(258, (8,))
            bits = bits if isinstance(bits, tuple) else (bits,)
            if max(bits) > 8 and len(bits) > 1:
                return "tiff", None
        if im.mode not in _PIL_MODES:
            raise ImageError(f"{self.path}: unsupported Pillow image mode {im.mode!r}")
        _, c, alpha, bits = _PIL_MODES[im.mode]
        if im.mode == "P":
            alpha = _palette_alpha(im)
        return "pil", ImageInfo(im.format or "", bits, c, alpha, im.mode, n, size)

    def _probe_tiff(self) -> ImageInfo:
        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            page = tif.pages[0]
            c, alpha = self._tiff_layout(page)
            kind = {"f": ";F"}.get(np.dtype(page.dtype).kind, f";{page.bitspersample}")
            name = ("L" if c == 1 else "RGB") + ("A" if alpha else "") + kind
            return ImageInfo("TIFF", int(page.bitspersample), c, alpha, name, len(tif.pages),
                             (int(page.imagelength), int(page.imagewidth)))

    def _tiff_layout(self, page) -> tuple[int, bool]:
        photometric = int(page.photometric)
        spp, extra = int(page.samplesperpixel), len(page.extrasamples)
        c = {0: 1, 1: 1, 2: 3}.get(photometric)
        if c is None or spp - extra != c or extra > 1:
            raise ImageError(f"{self.path}: unsupported TIFF layout (photometric {photometric}, "
                             f"{spp} samples per pixel)")
        return c, extra == 1

    def read(self, k: int) -> np.ndarray:
        return self._guard(getattr(self, f"_read_{self.kind}"), k)

    def _read_pil(self, k: int) -> np.ndarray:
        from PIL import Image, ImageOps

        with Image.open(self.path) as im:
            im.seek(k)
            frame = ImageOps.exif_transpose(im)
        mode = frame.mode
        if mode not in _PIL_MODES:
            raise ImageError(f"{self.path}: unsupported Pillow image mode {mode!r} on page {k}")
        target = _PIL_MODES[mode][0]
        if mode == "P":
            target = "RGBA" if _palette_alpha(frame) else "RGB"
        if target != mode:
            frame = frame.convert(target)
        a = np.asarray(frame)
        if mode == "I":
            if a.min() < 0 or a.max() > 65535:
                raise ImageError(f"{self.path}: 32-bit integer pixels (range [{a.min()}, {a.max()}]) are not "
                                 "supported; save the image with 8 or 16 bits or as float")
            a = a.astype(np.uint16)
        return a

    def _read_png16(self, k: int) -> np.ndarray:
        import png
        from PIL import Image

        if self.info.pages > 1:
            raise ImageError(f"{self.path}: animated 16-bit colour PNGs are not supported")
        with open(self.path, "rb") as f:  # pypng's Reader(filename=...) would leave the file open
            reader = png.Reader(file=f)
            reader.preamble()
            if reader.colormap:  # asDirect expands a palette; read_flat keeps the stored samples
                w, h, rows, meta = reader.asDirect()
                flat = [v for row in rows for v in row]
            else:
                w, h, flat, meta = reader.read_flat()
            c = int(meta["planes"])
            a = np.asarray(flat, dtype=np.uint16).reshape((h, w, c) if c > 1 else (h, w))
        with Image.open(self.path) as im:
            orientation = im.getexif().get(274, 1)
        return np.ascontiguousarray(_ORIENT.get(orientation, lambda x: x)(a))

    def _read_tiff(self, k: int) -> np.ndarray:
        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            page = tif.pages[k]
            self._tiff_layout(page)
            a = page.asarray()
            orientation = page.tags.get(274)
            orientation = int(orientation.value) if orientation is not None else 1
            if page.axes.startswith("S"):
                a = np.moveaxis(a, 0, -1)
            spp = page.samplesperpixel
            if a.shape != (page.imagelength, page.imagewidth) + ((spp,) if spp > 1 else ()):
                raise ImageError(f"{self.path}: unsupported TIFF page layout {page.axes} {a.shape} on page {k}")
            white = int(page.photometric) == 0
        if a.dtype not in _INT_SCALE and a.dtype.kind != "f":
            raise ImageError(f"{self.path}: unsupported TIFF sample type {a.dtype} on page {k}")
        if white:  # min-is-white gray (alpha, if any, is not inverted)
            inv = (np.iinfo(a.dtype).max - a) if a.dtype.kind == "u" else 1 - a
            a = inv if a.ndim == 2 else np.concatenate([inv[..., :1], a[..., 1:]], axis=-1)
        return np.ascontiguousarray(_ORIENT.get(orientation, lambda x: x)(a))


def _select_pages(p: Path, n: int, pages) -> list[int]:
    if pages is None:
        if n > 1:
            raise ImageError(f"{p} holds {n} pages (frames); pass pages=k (0 ≤ k < {n}) for one "
                             "or pages='all' for a list of all")
        return [0]
    if isinstance(pages, str):
        if pages != "all":
            raise ImageError(f"pages must be an int or 'all', got {pages!r}")
        return list(range(n))
    if isinstance(pages, bool) or not isinstance(pages, (int, np.integer)):
        raise ImageError(f"pages must be an int or 'all', got {pages!r}")
    if not 0 <= pages < n:
        raise ImageError(f"{p} holds {n} page(s); pages={pages} is out of range")
    return [int(pages)]


def _split_alpha(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if a.ndim == 3 and a.shape[-1] in (2, 4):
        return a[..., :-1], a[..., -1]
    return a, None


def read_image(path: str | Path, *, channels: int | None = None, pages: int | str | None = None):
    """Read an image file (PNG, JPEG, TIFF, GIF, BMP, WebP, PNM, ...) as a (1, C, H, W) float32 tensor in [0, 1].

    Pillow decodes the file (tifffile for the TIFFs Pillow cannot hold, e.g. 16-bit RGB).
    EXIF orientation is applied; palette, CMYK, YCbCr, LAB and HSV files become RGB;
    8-bit samples are divided by 255, 16-bit ones by 65535 (kept as uint16 until then);
    float TIFFs must hold values in [0, 1]. An alpha channel is dropped with a
    :class:`UserWarning` (:func:`read_alpha` returns it).

    Args:
        path: the file.
        channels: 1 or 3 to convert (see :func:`as_image`); default keeps the file's.
        pages: for multi-page / multi-frame files (TIFF stacks, animated GIF): an int
            page index (0-based), or ``"all"`` for a list of one tensor per page (pages
            may differ in size). Without it such files are refused.

    Returns:
        a ``(1, C, H, W)`` tensor, or a list of them for ``pages="all"``.

    Raises:
        FileNotFoundError: the file does not exist (an :class:`ImageFileNotFoundError`,
            which is also an :class:`ImageError`).
        ImageError: empty path, a folder, an empty, corrupt, truncated or non-image
            file, an unsupported layout, a multi-page file without ``pages`` or a page
            out of range; the message names the file.
    """
    p = _check_path(path)
    src = _Source(p)
    out = []
    for k in _select_pages(p, src.info.pages, pages):
        a, alpha = _split_alpha(src.read(k))
        if alpha is not None:
            _alpha_warning(p.name + (f" page {k}" if src.info.pages > 1 else ""), 2, "; read_alpha returns it")
        try:
            out.append(as_image(a, channels=channels))
        except ImageError as e:
            raise ImageError(f"{p}: {e}") from None
    return out if pages == "all" else out[0]


def read_alpha(path: str | Path, *, pages: int | str | None = None):
    """The alpha channel of an image file as a (1, 1, H, W) float32 tensor in [0, 1], or None.

    ``pages`` and the errors are as in :func:`read_image`; ``pages="all"`` gives a list.
    """
    p = _check_path(path)
    src = _Source(p)
    out = []
    for k in _select_pages(p, src.info.pages, pages):
        alpha = _split_alpha(src.read(k))[1]
        out.append(None if alpha is None else as_image(alpha))
    return out if pages == "all" else out[0]


def image_info(path: str | Path) -> ImageInfo:
    """Format, bit depth, channels, alpha, mode, page count and size of an image file, without decoding it.

    Raises:
        FileNotFoundError / ImageError: as :func:`read_image`.
    """
    return _Source(_check_path(path)).info


_WRITE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}


def write_image(path: str | Path, img, *, like: str | Path | ImageInfo | None = None,
                bit_depth: int | None = None, alpha=None) -> Path:
    """Write one image in [0, 1] to a PNG, TIFF or JPEG file (chosen by the suffix).

    Samples are stored as ``round(clip(x, 0, 1) · (2^bits − 1))``.

    Args:
        path: ``.png``, ``.tif`` / ``.tiff`` or ``.jpg`` / ``.jpeg``.
        img: a ``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` tensor, or a NumPy ``(H, W)`` /
            ``(H, W, C)`` array (any input :func:`as_image` accepts; values outside [0, 1]
            are clipped), C in {1, 3}.
        like: the input file (a path or its :func:`image_info`): its bit depth is kept
            (16 bits if it had more than 8, else 8).
        bit_depth: 8 or 16; overrides ``like``. Default 8.
        alpha: optional ``(H, W)`` alpha in [0, 1] (array or tensor; uint8/uint16 are
            scaled) stored as an alpha channel (PNG and TIFF only).

    Returns:
        the path written.

    Raises:
        ImageError: unknown suffix, a batch of several images, NaN/inf values, 16 bits or
            alpha for JPEG, bit depth other than 8/16, an alpha of the wrong size.
        FileNotFoundError: the target folder does not exist.
    """
    from PIL import Image

    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise ImageError(f"expected a file path to write to, got {path!r}")
    p = Path(path).expanduser()
    fmt = _WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ImageError(f"{p}: cannot tell the format from the suffix {p.suffix!r}; "
                         f"use one of {', '.join(_WRITE_FORMATS)}")
    if p.is_dir():
        raise ImageError(f"{p} is a folder")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"folder not found: {p.parent}")
    if isinstance(like, (str, os.PathLike)):
        like = image_info(like)
    elif like is not None and not isinstance(like, ImageInfo):
        raise ImageError(f"like must be a path or an ImageInfo, got {type(like).__name__}")
    if bit_depth is None:
        bit_depth = 16 if like is not None and like.bit_depth > 8 else 8
    if bit_depth not in (8, 16):
        raise ImageError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if fmt == "JPEG" and bit_depth == 16:
        raise ImageError(f"{p}: JPEG stores 8 bits per sample; write a .png or .tif file for 16 bits")
    t = as_image(img, allow_range=True)
    if t.shape[0] != 1:
        raise ImageError(f"write_image writes one image, got a batch of {t.shape[0]}")
    a = to_numpy(t).astype(np.float64)
    if alpha is not None:
        if fmt == "JPEG":
            raise ImageError(f"{p}: JPEG has no alpha channel; write a .png or .tif file")
        al = as_image(alpha)
        if al.shape[:2] != (1, 1) or al.shape[2:] != t.shape[2:]:
            raise ImageError(f"alpha must be H×W = {tuple(t.shape[2:])}, got shape {tuple(np.shape(alpha))}")
        a = np.dstack([a, to_numpy(al).astype(np.float64)])
    maxval, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    q = np.round(np.clip(a, 0, 1) * maxval).astype(dtype)
    if fmt == "TIFF":
        import tifffile

        tifffile.imwrite(p, q, photometric="rgb" if q.ndim == 3 and q.shape[2] >= 3 else "minisblack",
                         extrasamples=["unassalpha"] if alpha is not None else None)
    elif bit_depth == 16:
        import png

        h, w = q.shape[:2]
        c = 1 if q.ndim == 2 else q.shape[2]
        writer = png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=16)
        with open(p, "wb") as f:
            writer.write_array(f, q.reshape(-1))
    else:
        Image.fromarray(q).save(p, **({"quality": 95} if fmt == "JPEG" else {}))
    return p


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
