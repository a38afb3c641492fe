"""Tiled inference: denoise images larger than memory allows, tile by tile, seamlessly.

:func:`denoise_tiled` splits an image into overlapping tiles, runs each through a
method's :meth:`~denoise_lib.methods.base.Denoiser.denoise` (or any callable), and
cross-fades neighbouring tiles into one preallocated output. Only one tile is in
flight at a time, so peak memory is that of one tile's forward pass plus three
image-sized buffers (the input, its padded copy and the output).

When is tiled equal to untiled? A convolutional network's output at a pixel depends on
the input within its *receptive radius* R. Near a tile's cut edge the network sees the
tile's zero padding instead of the neighbouring pixels, so the output there is wrong
up to R pixels in. Each tile therefore gives **zero weight** to the outer part of every
band it shares with a neighbour and cross-fades only in the band's middle ``blend``
pixels; the output equals the untiled one (to float rounding) when

* ``(overlap - blend) / 2 ≥ R`` — every weighted pixel is at least R from a cut edge, and
* tile origins and sides are multiples of the network's pooling factor ``2**depth``
  (``multiple``): a U-Net with 2×2 max-pooling is equivariant only to shifts by whole
  pooling cells, so a tile that starts off the grid pools different pixel groups.

The image is first padded as the network itself pads a whole image (the U-Net: by
reflection to a multiple of ``2**depth``; the blind-spot U-Net: with zeros to a square),
and the tiles cover that padded domain, so tiles at the image border see exactly what
the untiled pass sees. For the library's networks (:class:`~denoise_lib.models.UNet`,
:class:`~denoise_lib.models.BlindSpotUNet`) :func:`receptive_radius` knows R (measured
by propagating the support of an impulse through the layers: 5·2^d − 2 pixels for the
U-Net of depth d, 158 for the default depth 5; 10·2^d − 5 for the blind-spot U-Net,
315 for depth 5), and ``overlap=None`` picks the smallest overlap that is exact.
The test suite checks tiled = untiled to 1e-5 on a 1500 × 1100 image.

Not exact: methods whose inference is not the network applied pixel-wise (a σ
estimated from the whole image, Laine19's ``sigma_mode="per-image"``; Noise2Self's
random J-invariant masks), per-image methods (Deep Image Prior fits each tile
separately: do not tile it), and unknown networks with too small an overlap, for which
the cross-fade still hides the seams.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from .image import ImageError, as_image, reflect_pad

__all__ = ["denoise_tiled", "tile_settings", "receptive_radius", "exact_overlap", "tile_plan",
           "DEFAULT_TILE", "DEFAULT_BLEND"]

#: default tile side in pixels (enlarged to ``2·overlap + multiple`` where the overlap needs it).
DEFAULT_TILE = 1024
#: default width of the cross-fade inside each shared band (at most the overlap).
DEFAULT_BLEND = 32
#: overlap used when the receptive radius is unknown.
FALLBACK_OVERLAP = 64


@dataclass(frozen=True)
class _Geometry:
    multiple: int
    radius: int | None
    pad: Callable[[torch.Tensor], torch.Tensor]


def _net(obj):
    return getattr(obj, "net", obj)


def _is_blindspot(net) -> bool:
    mod = sys.modules.get("denoise_lib.models.blindspot")  # not imported unless a blind-spot net exists
    return mod is not None and isinstance(net, mod.BlindSpotUNet)


def _geometry(obj, multiple: int | None) -> _Geometry:
    from .models.unet import UNet

    net = _net(obj)
    blind = _is_blindspot(net)
    if blind or isinstance(net, UNet):
        own = 2 ** int(net.depth)
        if multiple is not None and multiple % own:
            raise ValueError(f"multiple={multiple} must be a multiple of the network's pooling factor {own}")
        if blind:  # as BlindSpotUNet._pad: a square of side own·ceil(max(H, W) / own)
            def pad(x, own=own, zeros=net.padding == "zeros"):
                s = own * -(-max(x.shape[-2:]) // own)
                if zeros:
                    return F.pad(x, (0, s - x.shape[-1], 0, s - x.shape[-2]))
                return reflect_pad(x, (s, s))[0]
        else:  # as UNet.forward: reflection to a multiple of own
            def pad(x, own=own):
                return reflect_pad(x, own)[0]
        return _Geometry(multiple or own, receptive_radius(net), pad)
    m = 1 if multiple is None else multiple
    return _Geometry(m, receptive_radius(net), lambda x: reflect_pad(x, m)[0])


def receptive_radius(net) -> int | None:
    """Receptive radius of a library network (or of a method's ``net``), in pixels.

    The output at pixel p depends on input pixels within this Chebyshev distance of p
    only, for every position relative to the pooling grid: ``5·2**depth − 2`` for
    :class:`~denoise_lib.models.UNet` (158 at depth 5) and ``10·2**depth − 5`` for
    :class:`~denoise_lib.models.BlindSpotUNet` (315 at depth 5); both measured by
    pushing an impulse through the network with positive weights (tests/test_tiling.py).

    Returns:
        the radius (int), or None for any other network or callable.
    """
    from .models.unet import UNet

    net = _net(net)
    if _is_blindspot(net):
        return 10 * 2 ** int(net.depth) - 5
    if isinstance(net, UNet):
        return 5 * 2 ** int(net.depth) - 2
    return None


def exact_overlap(method_or_net, *, blend: int = DEFAULT_BLEND, multiple: int | None = None) -> int | None:
    """The smallest overlap (a multiple of the pooling factor) for which tiling is exact.

    ``2·receptive_radius + blend`` rounded up to ``multiple`` (default: the network's
    ``2**depth``); None when the receptive radius is unknown.

    Raises:
        ValueError: ``blend`` not an integer ≥ 0.
    """
    _check_int("blend", blend, 0)
    geo = _geometry(method_or_net, multiple)
    if geo.radius is None:
        return None
    return _round_up(2 * geo.radius + blend, geo.multiple)


def _round_up(n: int, m: int) -> int:
    return m * -(-n // m)


def _check_int(name: str, v, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name} must be an integer ≥ {lo}, got {v!r}")


def _spans(length: int, tile: int, stride: int, multiple: int, blend: int) -> list[tuple[int, int, torch.Tensor]]:
    """Tiles along one axis: ``(start, stop, weights)`` covering ``[0, length)``.

    Starts are multiples of ``multiple`` (the last one, ``length - tile``, of the
    network's own pooling factor, which divides ``length`` and ``tile``), spread evenly
    with consecutive starts at most ``stride`` apart; every tile but a lone one has
    side ``tile``. Each shared band gets a raised-cosine cross-fade of ``blend`` pixels
    in its middle; outside it the tile whose cut edge is nearer weighs zero.
    """
    if length <= tile:
        return [(0, length, torch.ones(length, dtype=torch.float64))]
    last = length - tile
    n = 1 + -(-last // stride)
    while True:  # evenly spread starts on the grid; the last tile ends at `length`
        starts = sorted({multiple * ((k * last) // ((n - 1) * multiple)) for k in range(n - 1)} | {last})
        if all(b - a <= stride for a, b in zip(starts[:-1], starts[1:])):
            break
        n += 1
    n = len(starts)
    cuts = []
    for a, b in zip(starts[:-1], starts[1:]):
        band = a + tile - b
        cuts.append(b + (band - blend) // 2)
    ramp = None
    if blend:
        t = (torch.arange(blend, dtype=torch.float64) + 0.5) / blend
        ramp = torch.sin(0.5 * math.pi * t) ** 2
    out = []
    for k, s in enumerate(starts):
        w = torch.ones(tile, dtype=torch.float64)
        if k > 0:  # fade in over [cut, cut + blend), zero before
            c = cuts[k - 1] - s
            w[:c] = 0
            if ramp is not None:
                w[c:c + blend] *= ramp
        if k < n - 1:  # fade out over [cut, cut + blend), zero after
            c = cuts[k] - s
            w[c + blend:] = 0
            if ramp is not None:
                w[c:c + blend] *= 1 - ramp
        out.append((s, s + tile, w))
    return out


def tile_plan(shape: tuple[int, int], *, tile: int, overlap: int, blend: int | None = None,
              multiple: int = 1) -> list[tuple[slice, slice]]:
    """The tiles that cover a domain of ``shape = (H, W)`` (the image as the network pads it,
    sides multiples of the pooling factor), as ``(rows, cols)`` slices, row-major.
    :func:`denoise_tiled` skips those whose weighted part lies entirely in the padding.

    Raises:
        ValueError: as :func:`denoise_tiled`.
    """
    tile, _, blend, stride = _settings(tile, overlap, blend, multiple)
    rows = _spans(shape[0], tile, stride, multiple, blend)
    cols = _spans(shape[1], tile, stride, multiple, blend)
    return [(slice(r0, r1), slice(c0, c1)) for r0, r1, _ in rows for c0, c1, _ in cols]


def _settings(tile: int, overlap: int, blend: int | None, multiple: int) -> tuple[int, int, int, int]:
    _check_int("tile", tile, 1)
    _check_int("overlap", overlap, 0)
    _check_int("multiple", multiple, 1)
    blend = min(overlap, DEFAULT_BLEND) if blend is None else blend
    _check_int("blend", blend, 0)
    if blend > overlap:
        raise ValueError(f"blend ({blend}) cannot exceed the overlap ({overlap})")
    t = tile // multiple * multiple
    if t < 2 * overlap + 1:
        need = _round_up(2 * overlap + 1, multiple)
        raise ValueError(f"tile {tile} (rounded down to a multiple of {multiple}: {t}) must be at least "
                         f"2·overlap + 1 = {2 * overlap + 1}; use tile ≥ {need} or a smaller overlap")
    stride = (t - overlap) // multiple * multiple
    if stride < 1:
        raise ValueError(f"tile {tile} leaves no room to advance by a multiple of {multiple} past the "
                         f"overlap {overlap}; use a larger tile")
    return t, overlap, blend, stride


def _caller(obj) -> Callable[[torch.Tensor], torch.Tensor]:
    if hasattr(obj, "denoise") and callable(obj.denoise):
        return obj.denoise
    if isinstance(obj, torch.nn.Module):
        def run(x, net=obj):
            dev = next(iter(net.parameters()), torch.empty(0)).device
            return net(x.to(dev)).float().cpu()
        return run
    if callable(obj):
        return obj
    raise TypeError(f"denoise_tiled needs a method, a network or a callable, got {type(obj).__name__}")


def _channels_for(obj, y: torch.Tensor) -> torch.Tensor:
    c = getattr(obj, "channels", None)
    if c is None and isinstance(_net(obj), torch.nn.Module):
        c = getattr(_net(obj), "in_channels", None)
    if isinstance(c, int) and y.shape[1] != c:
        if y.shape[1] == 1 and c == 3:
            return y.expand(-1, 3, -1, -1).contiguous()
        raise ImageError(f"{getattr(obj, 'name', type(obj).__name__)} was built for {c}-channel images, "
                         f"got {y.shape[1]} channels")
    return y


def tile_settings(method_or_fn, *, tile: int | None = None, overlap: int | None = None,
                  blend: int | None = None, multiple: int | None = None) -> dict:
    """The settings :func:`denoise_tiled` would use, defaults filled in and validated.

    Returns:
        ``{"tile", "overlap", "blend", "multiple", "radius", "exact"}``: sizes in pixels;
        ``radius`` is the network's receptive radius (None if unknown) and ``exact`` says
        whether ``(overlap − blend) / 2 ≥ radius`` (None if unknown).

    Raises:
        ValueError: as :func:`denoise_tiled`.
    """
    geo, (tile, overlap, blend, _) = _resolve(method_or_fn, tile, overlap, blend, multiple)
    exact = None if geo.radius is None else (overlap - blend) // 2 >= geo.radius
    return {"tile": tile, "overlap": overlap, "blend": blend, "multiple": geo.multiple,
            "radius": geo.radius, "exact": exact}


def _resolve(obj, tile, overlap, blend, multiple):
    if multiple is not None:
        _check_int("multiple", multiple, 1)
    geo = _geometry(obj, multiple)
    if blend is not None:
        _check_int("blend", blend, 0)
    if overlap is None:
        b = DEFAULT_BLEND if blend is None else blend
        overlap = (_round_up(2 * geo.radius + b, geo.multiple) if geo.radius is not None
                   else FALLBACK_OVERLAP)
    else:
        _check_int("overlap", overlap, 0)
    if tile is None:
        tile = max(DEFAULT_TILE, _round_up(2 * overlap + 1, geo.multiple))
    return geo, _settings(tile, overlap, blend, geo.multiple)


def denoise_tiled(method_or_fn, y, *, tile: int | None = None, overlap: int | None = None,
                  blend: int | None = None, multiple: int | None = None,
                  progress: bool = False) -> torch.Tensor:
    """Denoise an image tile by tile with bounded memory and seamless (by default exact) output.

    Args:
        method_or_fn: a :class:`~denoise_lib.methods.base.Method` (its ``denoise`` is
            called per tile), a network (``nn.Module``, called under ``no_grad``), or a
            callable mapping a float32 ``(1, C, h, w)`` tile to a ``(1, C', h, w)`` tensor
            (called under ``no_grad``).
        y: noisy image(s), anything :func:`~denoise_lib.image.as_image` accepts (values
            may leave [0, 1]); a batch is processed image by image. Gray input to an
            RGB method is replicated, as in ``denoise``.
        tile: tile side in pixels, rounded down to a multiple of ``multiple``. Default
            :data:`DEFAULT_TILE` (1024), enlarged to the smallest multiple above
            ``2·overlap`` if the overlap needs it. A side shorter than the tile is one tile.
        overlap: pixels shared by neighbouring tiles. Default: :func:`exact_overlap`
            (``2·receptive_radius + blend``, rounded up; 352 for the depth-5 U-Net) for
            the library's networks, else 64.
        blend: width of the raised-cosine cross-fade in the middle of each shared band
            (default ``min(overlap, 32)``); the rest of the band is computed but weighs
            zero in the tile whose cut edge it touches. The weights of each pixel are
            normalised to sum to one.
        multiple: tile origins and sides are multiples of this (the network's pooling
            factor). Default ``2**depth`` for the library's U-Nets, else 1.
        progress: show a tqdm bar over the tiles (stderr).

    Returns:
        float32 ``(N, C', H, W)`` tensor on the CPU (not clipped).

    Raises:
        ValueError: a size argument that is not an integer in range, ``blend > overlap``,
            ``tile < 2·overlap + 1``, or ``multiple`` not a multiple of the network's
            pooling factor.
        ImageError: unusable input, or RGB input to a gray method.
        TypeError: ``method_or_fn`` is not callable.
    """
    fn = _caller(method_or_fn)
    geo, (tile, overlap, blend, stride) = _resolve(method_or_fn, tile, overlap, blend, multiple)
    y = _channels_for(method_or_fn, as_image(y, allow_range=True).cpu())
    with torch.no_grad():
        outs = [_one(fn, y[i:i + 1], geo, tile, stride, blend, progress) for i in range(y.shape[0])]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def _one(fn, y: torch.Tensor, geo: _Geometry, tile: int, stride: int, blend: int, progress: bool) -> torch.Tensor:
    h, w = y.shape[-2:]
    yp = geo.pad(y)
    rows = [r for r in _spans(yp.shape[-2], tile, stride, geo.multiple, blend) if r[0] < h and r[2][:h - r[0]].any()]
    cols = [c for c in _spans(yp.shape[-1], tile, stride, geo.multiple, blend) if c[0] < w and c[2][:w - c[0]].any()]
    norm_r = torch.zeros(h, dtype=torch.float64)
    norm_c = torch.zeros(w, dtype=torch.float64)
    for s, e, wt in rows:
        norm_r[s:min(e, h)] += wt[:min(e, h) - s]
    for s, e, wt in cols:
        norm_c[s:min(e, w)] += wt[:min(e, w) - s]
    out = None
    bar = None
    if progress:
        from tqdm.std import tqdm

        bar = tqdm(total=len(rows) * len(cols), desc="tiles", unit="tile", file=sys.stderr, leave=False)
    try:
        for r0, r1, wr in rows:
            rr = min(r1, h) - r0
            for c0, c1, wc in cols:
                cc = min(c1, w) - c0
                t = fn(yp[..., r0:r1, c0:c1])
                if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[0] != 1 \
                        or tuple(t.shape[-2:]) != (r1 - r0, c1 - c0):
                    raise ValueError(f"the tile function must return a (1, C, {r1 - r0}, {c1 - c0}) tensor, got "
                                     f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
                t = t.detach().to("cpu", torch.float32)
                if out is None:
                    out = torch.zeros((1, t.shape[1], h, w), dtype=torch.float32)
                wt = (wr[:rr, None] * wc[None, :cc]).to(torch.float32)
                out[..., r0:r0 + rr, c0:c0 + cc] += t[..., :rr, :cc] * wt
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    out /= norm_r.to(torch.float32)[:, None]
    out /= norm_c.to(torch.float32)[None, :]
    return out
