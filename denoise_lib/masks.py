"""Masking for the self-supervised methods: which pixels to hide, and what to put there.

Every masked ("blind-spot") method of the library takes its masks from this module:
Noise2Void, Noise2Self, Noise2Same and the J-invariance tools of
:mod:`denoise_lib.invariance`. Book: Part 2, "J-invariance".

Conventions
-----------
* Images ``y`` are float NCHW tensors (noisy, so values may leave [0, 1]).
* A **mask** is a boolean tensor of shape ``(B, 1, H, W)``: ``True`` marks a masked
  pixel. Masks are per pixel and shared by all channels (an RGB pixel is masked as a
  whole), so a mask with ``k`` True entries hides ``k · C`` entries of a C-channel
  image. In the book's notation (:doc:`../book/00_notation`) the set of masked entries
  is :math:`J` and the masked image is :math:`y_{J^c}`.
* Masks are built **from coordinates**, never by comparing pixel values, so a
  constant image is masked like any other (COURSE.md §4).
* Every random draw comes from an optional ``torch.Generator`` (else the global
  RNG, which :func:`denoise_lib.train.fit` seeds and checkpoints). Random numbers are
  drawn on the generator's device and moved to the image's device.

Sampling: :func:`stratified_mask` (the "stratified sampling" of Noise2Void,
Krull et al. 2019, Sec. 3 and its code; called "saturate sampling" in Noise2Same §3.1).

Replacement strategies (:func:`replace`, :data:`STRATEGIES`); each fills the masked
pixels with values that depend on ``y`` only through the **unmasked** pixels
``y_{J^c}`` (see "Why replacements read only unmasked pixels" below):

* ``"ups"`` — uniform pixel selection (Noise2Void, Krull et al. 2019, Sec. 3: the
  masked value is replaced by that of a randomly selected pixel of its surrounding
  area): the value of a uniformly chosen pixel of the ``(2r+1)×(2r+1)``
  neighbourhood, **excluding the centre** (r = 2, the 5×5 "UPS (5×5)" of Noise2Same's
  Table 1).
* ``"random"`` — Noise2Self's noise masking (Batson & Royer 2019; Noise2Same §5.1:
  "a random value on the range of given image data"): i.i.d. uniform values on
  ``[low, high]``, by default [0, 1], the range of the library's images.
* ``"gaussian"`` — Noise2Same's replacement (Xie et al. 2020, Sec. 3.1 and its code:
  ``N(0, 0.2)`` on data normalised to zero mean and unit variance). On our
  un-normalised [0, 1] data the same distribution is ``μ + σ_r · s · n`` with
  ``n ~ N(0, 1)`` and ``μ, s`` the mean and standard deviation of the image (over its
  unmasked pixels); ``relative=False`` gives plain ``σ_r · n`` in [0, 1] units.
* ``"donut"`` — Noise2Self's "donut" (Batson & Royer 2019; "Noise2Self-Donut" in
  Noise2Same §5.1 and Table 3): the mean of the
  ``k×k`` neighbours excluding the centre (k = 3: the 8 neighbours).
* ``"zero"`` — zeros (Noise2Self's ``zero`` masker).

Borders: neighbourhoods are reflected at the image border (``…, 2, 1, 0, 1, 2, …``,
without repeating the edge pixel), so the centre never appears as its own neighbour.

Why replacements read only unmasked pixels
------------------------------------------
If two masked pixels p and q are neighbours, a UPS or donut replacement at q that read
``y_p`` would smuggle ``y_p`` into the network input, and the masked network
``g(y) = f(mask(y))`` would no longer be J-invariant, which the Noise2Self argument
needs (Batson & Royer 2019; Noise2Same §2, Eq. (1)–(2)). Here the neighbours of a masked pixel are drawn
among the unmasked ones; only when every neighbour is masked (possible only for
masks denser than any :func:`stratified_mask` with ``fraction ≤ 1/4``) do the other
masked neighbours serve, the centre itself never.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["stratified_mask", "stratified_coords", "cell_size", "grid_mask", "replace", "apply_mask",
           "mask_batch", "ups", "random_uniform", "gaussian", "donut", "zero", "STRATEGIES",
           "masked_mean", "masked_mse"]


def _gen_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    return generator.device if generator is not None else fallback


def _check_image(y: torch.Tensor, name: str = "y") -> None:
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or not y.is_floating_point():
        raise TypeError(f"{name} must be a float NCHW tensor, got "
                        f"{type(y).__name__}{tuple(y.shape) if isinstance(y, torch.Tensor) else ''}")
    if y.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(y.shape)}")


def _check_mask(mask: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a boolean tensor of shape (B, 1, H, W)")
    b, _, h, w = y.shape
    if mask.shape != (b, 1, h, w):
        raise ValueError(f"mask must have shape {(b, 1, h, w)} for an image of shape {tuple(y.shape)}, "
                         f"got {tuple(mask.shape)}")


def cell_size(fraction: float) -> int:
    """Side ``s`` of the stratification cells for a mask ``fraction``: ``round(1/√fraction)``.

    One pixel is masked per ``s×s`` cell, so the realised fraction is exactly ``1/s²``
    (0.2 % → s = 22 → 0.207 %; 0.5 % → s = 14 → 0.51 %, as in Noise2Same's code;
    1/16 → s = 4).

    Raises:
        ValueError: ``fraction`` outside (0, 1/4]. Denser masks would leave masked
            pixels without unmasked neighbours to draw replacements from.
    """
    if not isinstance(fraction, (int, float)) or not (0 < fraction <= 0.25) or math.isnan(fraction):
        raise ValueError(f"mask fraction must lie in (0, 0.25], got {fraction!r}")
    return max(2, int(round(1 / math.sqrt(fraction))))


def stratified_mask(shape, fraction: float, *, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Stratified random mask: one uniformly placed pixel in every ``s×s`` cell.

    The image plane is tiled by cells of side ``s = cell_size(fraction)`` starting at
    the top-left corner; each cell gets one pixel at a uniform random offset in
    ``[0, s)²``, independently per cell and per sample. Where ``H`` or ``W`` is not a
    multiple of ``s``, the cells at the bottom/right border are partial; a draw that
    falls outside the image is dropped (as in Noise2Void's and Noise2Same's code), so
    every pixel is masked with the same probability ``1/s²`` and all coordinates are
    inside the image. A sample whose draws all fell outside (an image smaller than a
    cell) gets one uniformly chosen pixel instead: a mask is never empty.

    Source: Noise2Void (Krull et al. 2019), Sec. 3, "stratified sampling"; Noise2Same
    (Xie et al. 2020), Sec. 3.1 ("saturate sampling").

    Args:
        shape: ``(B, C, H, W)`` or ``(B, H, W)`` (the channel count is ignored).
        fraction: target fraction of masked pixels in (0, 1/4]; realised ``1/s²``.
        generator: source of randomness (default: the global RNG).
        device: device of the returned mask (default: the generator's, else CPU).

    Returns:
        boolean tensor of shape ``(B, 1, H, W)``; at most one True per cell, exactly one
        per complete cell, at least one per sample.

    Raises:
        ValueError: bad ``fraction`` (see :func:`cell_size`) or a shape with a
            non-positive size.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        b, _, h, w = shape
    elif len(shape) == 3:
        b, h, w = shape
    else:
        raise ValueError(f"shape must be (B, C, H, W) or (B, H, W), got {shape}")
    if min(b, h, w) < 1:
        raise ValueError(f"shape must have positive sizes, got {shape}")
    s = cell_size(fraction)
    gdev = _gen_device(generator, torch.device("cpu"))
    out_dev = torch.device(device) if device is not None else gdev
    nh, nw = -(-h // s), -(-w // s)
    off = torch.randint(0, s, (b, nh, nw, 2), generator=generator, device=gdev)
    rows = torch.arange(nh, device=gdev).view(1, nh, 1) * s + off[..., 0]
    cols = torch.arange(nw, device=gdev).view(1, 1, nw) * s + off[..., 1]
    keep = (rows < h) & (cols < w)
    bi = torch.arange(b, device=gdev).view(b, 1, 1).expand(b, nh, nw)
    mask = torch.zeros((b, 1, h, w), dtype=torch.bool, device=gdev)
    mask[bi[keep], 0, rows[keep], cols[keep]] = True
    empty = ~mask.flatten(1).any(1)
    if empty.any():  # an image smaller than one cell: one uniform pixel instead
        idx = torch.nonzero(empty).flatten()
        pos = torch.randint(0, h * w, (idx.numel(),), generator=generator, device=gdev)
        mask[idx, 0, pos // w, pos % w] = True
    return mask.to(out_dev)


def stratified_coords(shape, fraction: float, *, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The coordinates ``(b, i, j)`` (int64 tensors of equal length) of :func:`stratified_mask`.

    Same arguments, randomness and errors as :func:`stratified_mask`; sorted by
    sample, then row, then column.
    """
    m = stratified_mask(shape, fraction, generator=generator, device=device)
    b, _, i, j = torch.nonzero(m, as_tuple=True)
    return b, i, j


def grid_mask(shape, grid: int, phase: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """The regular-grid mask of Noise2Self (Batson & Royer 2019, code ``mask.py``): phase ``phase`` of ``grid²``.

    Pixel ``(i, j)`` is masked iff ``(i mod grid) * grid + (j mod grid) == phase``; the
    ``grid²`` phases partition the image (the partition :math:`\\mathcal J` of
    :func:`denoise_lib.invariance.j_invariant_predict`).

    Args:
        shape: ``(B, C, H, W)`` or ``(B, H, W)``.
        grid: grid spacing ≥ 2. phase: in ``[0, grid²)``.

    Returns:
        boolean ``(B, 1, H, W)`` mask.

    Raises:
        ValueError: ``grid < 2`` or ``phase`` out of range.
    """
    shape = tuple(int(s) for s in shape)
    b, h, w = (shape[0], shape[-2], shape[-1])
    if not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an integer ≥ 2, got {grid!r}")
    if not 0 <= phase < grid * grid:
        raise ValueError(f"phase must lie in [0, {grid * grid}), got {phase}")
    i = torch.arange(h, device=device).view(h, 1) % grid
    j = torch.arange(w, device=device).view(1, w) % grid
    m = (i * grid + j) == phase
    return m.view(1, 1, h, w).expand(b, 1, h, w).clone()


def _reflect(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect integer indices into [0, n) without repeating the edge (…, 2, 1, 0, 1, 2, …)."""
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - idx, idx)


def _neighbours(y: torch.Tensor, mask: torch.Tensor, radius: int):
    """Candidate neighbours of every masked pixel.

    Returns ``(b, i, j, ni, nj, usable)``: coordinates of the M masked pixels (M,), the
    reflected coordinates of their K = (2r+1)²−1 neighbours (M, K), and which neighbours
    may serve as sources (M, K): not the centre after reflection, and unmasked when the
    pixel has at least one unmasked non-centre neighbour.
    """
    _, _, h, w = y.shape
    if h < 2 or w < 2:
        raise ValueError(f"neighbour replacements need H, W ≥ 2, got an image of shape {tuple(y.shape)}")
    b, _, i, j = torch.nonzero(mask, as_tuple=True)
    r = torch.arange(-radius, radius + 1, device=y.device)
    di, dj = torch.meshgrid(r, r, indexing="ij")
    keep = (di != 0) | (dj != 0)
    di, dj = di[keep], dj[keep]
    ni = _reflect(i[:, None] + di[None], h)
    nj = _reflect(j[:, None] + dj[None], w)
    not_centre = (ni != i[:, None]) | (nj != j[:, None])
    free = not_centre & ~mask[b[:, None], 0, ni, nj]
    has_free = free.any(1, keepdim=True)
    usable = torch.where(has_free, free, not_centre)
    return b, i, j, ni, nj, usable


def ups(y: torch.Tensor, mask: torch.Tensor, *, radius: int = 2,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform pixel selection (Noise2Void, Krull et al. 2019, Sec. 3), excluding the centre.

    Each masked pixel takes the value (all channels) of one neighbour chosen uniformly
    among the ``(2·radius+1)² − 1`` pixels of its neighbourhood other than itself,
    reflected at the border; neighbours that are masked themselves are not used (see
    the module docstring). Noise2Void's first implementation could pick the centre,
    which leaks the pixel into its own input (Noise2Same §3.2); this one never does.

    Args:
        y: float (B, C, H, W) with H, W ≥ 2. mask: bool (B, 1, H, W).
        radius: r ≥ 1 (default 2: the 5×5 neighbourhood of Noise2Void).
        generator: randomness (default: global RNG).

    Returns:
        tensor like ``y`` holding the replacement values at masked pixels and ``y`` elsewhere.

    Raises:
        TypeError / ValueError: bad ``y``, ``mask`` or ``radius``; H or W < 2.
    """
    _check_image(y)
    _check_mask(mask, y)
    if not isinstance(radius, int) or radius < 1:
        raise ValueError(f"radius must be an integer ≥ 1, got {radius!r}")
    b, i, j, ni, nj, usable = _neighbours(y, mask, radius)
    score = torch.rand(usable.shape, generator=generator, device=_gen_device(generator, y.device)).to(y.device)
    pick = torch.where(usable, score, torch.full_like(score, -1.0)).argmax(1)
    src_i = ni.gather(1, pick[:, None])[:, 0]
    src_j = nj.gather(1, pick[:, None])[:, 0]
    out = y.clone()
    out[b, :, i, j] = y[b, :, src_i, src_j]
    return out


def donut(y: torch.Tensor, mask: torch.Tensor, *, kernel_size: int = 3,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Local mean excluding the centre (Noise2Self's "donut", Batson & Royer 2019; Noise2Same §5.1).

    Each masked pixel takes, channel by channel, the plain mean of the
    ``kernel_size² − 1`` other pixels of its ``k×k`` neighbourhood (reflected at the
    border); masked neighbours are left out of the mean (see the module docstring).
    Deterministic (``generator`` is accepted for a uniform interface and ignored).

    Args:
        y: float (B, C, H, W), H, W ≥ 2. mask: bool (B, 1, H, W).
        kernel_size: odd k ≥ 3.

    Returns:
        tensor like ``y`` with the local means at masked pixels, ``y`` elsewhere.

    Raises:
        TypeError / ValueError: bad inputs or an even / too small ``kernel_size``.
    """
    _check_image(y)
    _check_mask(mask, y)
    if not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer ≥ 3, got {kernel_size!r}")
    b, i, j, ni, nj, usable = _neighbours(y, mask, kernel_size // 2)
    vals = y[b[:, None], :, ni, nj]                       # (M, K, C)
    wts = usable.to(y.dtype)[..., None]
    out = y.clone()
    out[b, :, i, j] = (vals * wts).sum(1) / wts.sum(1)
    return out


def random_uniform(y: torch.Tensor, mask: torch.Tensor, *, low: float = 0.0, high: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise2Self's noise masking: i.i.d. ``U(low, high)`` values at masked entries.

    Default [0, 1], the range of the library's images (Noise2Same §5.1 describes
    Noise2Self's replacement as "a random value on the range of given image data").
    Every channel of a masked pixel gets its own draw.

    Raises:
        ValueError: ``low > high``.
    """
    _check_image(y)
    _check_mask(mask, y)
    if not low <= high:
        raise ValueError(f"need low ≤ high, got [{low}, {high}]")
    u = torch.rand(y.shape, generator=generator, dtype=y.dtype, device=_gen_device(generator, y.device))
    return torch.where(mask, low + (high - low) * u.to(y.device), y)


def masked_mean(y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each image over its **unmasked** entries.

    Args:
        y: float (B, C, H, W). mask: bool (B, 1, H, W) (True = excluded).

    Returns:
        ``(mean, std)``, each of shape (B, 1, 1, 1), over channels and unmasked pixels
        (population std, i.e. divided by the count, as NumPy's ``std``).
    """
    keep = (~mask).to(y.dtype).expand_as(y)
    n = keep.sum((1, 2, 3), keepdim=True).clamp_min(1)
    mean = (y * keep).sum((1, 2, 3), keepdim=True) / n
    var = (((y - mean) ** 2) * keep).sum((1, 2, 3), keepdim=True) / n
    return mean, var.sqrt()


def gaussian(y: torch.Tensor, mask: torch.Tensor, *, sigma: float = 0.2, relative: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian replacement of Noise2Same (Xie et al. 2020, Sec. 3.1, Table 1; code: N(0, 0.2)).

    The paper works on images normalised to zero mean and unit variance and replaces
    masked entries by ``N(0, σ_r²)`` noise (σ_r = 0.2 in training; σ_m = 0.5 for the
    measure D(f) of its Eq. (5)). With ``relative=True`` (default) the same values
    are produced on un-normalised data: ``μ + σ_r · s · n``, ``n ~ N(0, 1)``, where
    ``μ, s`` are the image's mean and standard deviation over its unmasked entries
    (:func:`masked_mean`; the paper normalises by the whole image, which differs by
    O(|J|/d), and excluding J keeps the replacement free of ``y_J``). With
    ``relative=False`` the values are ``σ_r · n`` in the units of ``y``.

    Args:
        sigma: σ_r ≥ 0 (in units of the image's standard deviation when ``relative``).

    Raises:
        ValueError: negative ``sigma``.
    """
    _check_image(y)
    _check_mask(mask, y)
    if not sigma >= 0:
        raise ValueError(f"sigma must be ≥ 0, got {sigma!r}")
    n = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=_gen_device(generator, y.device))
    n = n.to(y.device)
    if relative:
        mean, std = masked_mean(y, mask)
        vals = mean + sigma * std * n
    else:
        vals = sigma * n
    return torch.where(mask, vals, y)


def zero(y: torch.Tensor, mask: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zeros at masked entries (Noise2Self's ``zero`` masker). Deterministic."""
    _check_image(y)
    _check_mask(mask, y)
    return y.masked_fill(mask, 0.0)


#: name → replacement function ``f(y, mask, *, generator, **options) -> y with masked entries replaced``.
STRATEGIES: dict[str, Callable[..., torch.Tensor]] = {
    "ups": ups, "random": random_uniform, "gaussian": gaussian, "donut": donut, "zero": zero,
}


def replace(y: torch.Tensor, mask: torch.Tensor, strategy: str = "ups", *,
            generator: torch.Generator | None = None, **options) -> torch.Tensor:
    """``y`` with its masked pixels replaced by ``strategy`` (a key of :data:`STRATEGIES`).

    Args:
        y: float (B, C, H, W). mask: bool (B, 1, H, W).
        strategy: "ups", "random", "gaussian", "donut" or "zero".
        generator: randomness (default: global RNG).
        **options: passed to the strategy (``radius`` for ups, ``kernel_size`` for
            donut, ``low``/``high`` for random, ``sigma``/``relative`` for gaussian).

    Returns:
        a new tensor like ``y``; unmasked entries are exactly ``y``'s.

    Raises:
        ValueError: unknown strategy (the message lists them) or bad options.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown replacement strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[strategy](y, mask, generator=generator, **options)


def apply_mask(y: torch.Tensor, mask: torch.Tensor, strategy: str = "ups", *,
               generator: torch.Generator | None = None, **options) -> torch.Tensor:
    """Alias of :func:`replace` (the masked input :math:`y_{J^c}` for a given mask)."""
    return replace(y, mask, strategy, generator=generator, **options)


def mask_batch(y: torch.Tensor, fraction: float, strategy: str = "ups", *,
               generator: torch.Generator | None = None, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a stratified mask for a batch and replace the masked pixels.

    Args:
        y: noisy batch, float (B, C, H, W).
        fraction: mask fraction in (0, 1/4] (:func:`stratified_mask`).
        strategy, **options: see :func:`replace`.
        generator: randomness for both the mask and the replacement.

    Returns:
        ``(masked, mask)``: the network input :math:`y_{J^c}` (same shape and dtype as
        ``y``) and the boolean mask (B, 1, H, W) on ``y``'s device.

    Raises:
        TypeError: ``y`` is not a float NCHW tensor. ValueError: bad fraction or strategy.
    """
    _check_image(y)
    mask = stratified_mask(y.shape, fraction, generator=generator).to(y.device)
    return replace(y, mask, strategy, generator=generator, **options), mask


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over the masked entries only.

    ``Σ_{masked pixels, channels} (a − b)² / (number of masked pixels · C)``: the
    normalisation is by the number of masked entries of the whole batch, not by all
    pixels (Noise2Void, Krull et al. 2019, Sec. 3: the loss is evaluated at the masked
    pixels only; Noise2Same, Sec. 4.1 and Fig. 1, computes its masked terms the same way).

    Args:
        a, b: float (B, C, H, W). mask: bool (B, 1, H, W).

    Returns:
        scalar tensor (differentiable in ``a`` and ``b``).

    Raises:
        ValueError: an empty mask (nothing to average; :func:`stratified_mask` never
            returns one), or mismatched shapes.
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    _check_mask(mask, a)
    count = mask.sum()
    if int(count) == 0:
        raise ValueError("empty mask: no masked pixel to average the loss over")
    sq = ((a - b) ** 2).masked_fill(~mask, 0.0)
    return sq.sum() / (count * a.shape[1])
