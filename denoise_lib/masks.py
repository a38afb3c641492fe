"""Masking for the self-supervised methods: which pixels to hide, and what to put there.

Every masked ("blind-spot") method of the library takes its masks from this module:
Noise2Void, Noise2Self, Noise2Same, the J-invariant inference of
:mod:`denoise_lib.invariance` and the course measures of
:mod:`denoise_lib.course.jinvariance`. Book: Part 2, "J-invariance".

Conventions
-----------
* Images ``y`` are float NCHW tensors (noisy, so values may leave [0, 1]).
* A **mask** is a boolean tensor of shape ``(B, 1, H, W)``: ``True`` marks a masked
  pixel. Masks are per pixel and shared by all channels (an RGB pixel is masked as a
  whole), so a mask with ``k`` True entries hides ``k · C`` entries of a C-channel
  image. In the book's notation (:doc:`../book/00_notation`) the set of masked entries
  is :math:`J` and the masked image is :math:`y_{J^c}`.
* Masks are built **from coordinates**, never by comparing pixel values, so a
  constant image is masked like any other.
* Every random draw comes from the ``generator`` argument (a ``torch.Generator``, in
  training ``batch.generator``), never from torch's global RNG; the functions that
  draw raise ``TypeError`` without one. Random numbers are drawn on the generator's
  device and moved to the image's device.
* Everything used in a training step (:func:`stratified_mask`, :func:`replace` and
  its strategies, :func:`mask_batch`, :func:`masked_mse`) is computed densely, with
  no host round trip and no data-dependent shape (no ``nonzero``, no boolean
  indexing), so it runs asynchronously on an accelerator.

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


def _check_generator(generator, fn: str) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{fn} draws random numbers: pass generator=torch.Generator(...) "
                        f"(in a loss, batch.generator), got {type(generator).__name__}")
    return generator


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


def _bhw(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        b, _, h, w = shape
    elif len(shape) == 3:
        b, h, w = shape
    else:
        raise ValueError(f"shape must be (B, C, H, W) or (B, H, W), got {shape}")
    if min(b, h, w) < 1:
        raise ValueError(f"shape must have positive sizes, got {shape}")
    return b, h, w


def stratified_mask(shape, fraction: float, *, generator: torch.Generator,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Stratified random mask: one uniformly placed pixel in every ``s×s`` cell.

    The image plane is tiled by cells of side ``s = cell_size(fraction)`` starting at
    the top-left corner; each cell gets one pixel at a uniform random offset in
    ``[0, s)²``, independently per cell and per sample. Where ``H`` or ``W`` is not a
    multiple of ``s``, the cells at the bottom/right border are partial; a draw that
    falls outside the image is dropped (as in Noise2Void's and Noise2Same's code), so
    every pixel is masked with the same probability ``1/s²`` and all coordinates are
    inside the image. When ``H < s`` or ``W < s`` a sample may have no draw inside the
    image; it then gets one uniformly chosen pixel instead: a mask is never empty.

    Built densely (each pixel compares its offset in its cell with the cell's draw):
    no host round trip, suitable for the training step.

    Source: Noise2Void (Krull et al. 2019), Sec. 3, "stratified sampling"; Noise2Same
    (Xie et al. 2020), Sec. 3.1 ("saturate sampling").

    Args:
        shape: ``(B, C, H, W)`` or ``(B, H, W)`` (the channel count is ignored).
        fraction: target fraction of masked pixels in (0, 1/4]; realised ``1/s²``.
        generator: source of randomness; the draws are made on its device.
        device: device of the returned mask (default: the generator's).

    Returns:
        boolean tensor of shape ``(B, 1, H, W)``; at most one True per cell, exactly one
        per complete cell, at least one per sample.

    Raises:
        ValueError: bad ``fraction`` (see :func:`cell_size`) or a shape with a
            non-positive size. TypeError: no generator.
    """
    b, h, w = _bhw(shape)
    s = cell_size(fraction)
    _check_generator(generator, "stratified_mask")
    gdev = generator.device
    nh, nw = -(-h // s), -(-w // s)
    off = torch.randint(0, s, (b, 2, nh, nw), generator=generator, device=gdev)
    # the draw of each pixel's cell, expanded to the pixel grid (cropped at the border)
    cell_r = off[:, 0].repeat_interleave(s, 1).repeat_interleave(s, 2)[:, :h, :w]
    cell_c = off[:, 1].repeat_interleave(s, 1).repeat_interleave(s, 2)[:, :h, :w]
    rows = torch.arange(h, device=gdev).view(1, h, 1) % s
    cols = torch.arange(w, device=gdev).view(1, 1, w) % s
    mask = ((cell_r == rows) & (cell_c == cols)).unsqueeze(1)
    if h < s or w < s:  # no complete cell (a host-side shape test): a sample may be empty
        pos = torch.randint(0, h * w, (b, 1), generator=generator, device=gdev)
        single = (torch.arange(h * w, device=gdev).view(1, h * w) == pos).view(b, 1, h, w)
        empty = ~mask.flatten(1).any(1).view(b, 1, 1, 1)
        mask = torch.where(empty, single, mask)
    return mask.to(device if device is not None else gdev)


def stratified_coords(shape, fraction: float, *, generator: torch.Generator,
                      device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The coordinates ``(b, i, j)`` (int64 tensors of equal length) of :func:`stratified_mask`.

    Same arguments, randomness and errors as :func:`stratified_mask`; sorted by
    sample, then row, then column. The length depends on the draw (``torch.nonzero``),
    so this synchronises with the device: for inspection, not for a training step.
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


def _neighbourhood(mask: torch.Tensor, radius: int):
    """The reflected neighbours of every pixel, and which may serve as sources.

    For the K = (2r+1)² − 1 offsets ``(di, dj) ≠ (0, 0)`` (row-major order):

    Returns ``(rows, cols, usable)``: ``rows`` (K, H) and ``cols`` (K, W) int64, the
    reflected row / column of each offset from each row / column; ``usable`` bool
    (B, K, H, W): the neighbour is not the pixel itself after reflection, and is
    unmasked whenever the pixel has at least one unmasked such neighbour.
    """
    b, _, h, w = mask.shape
    if h < 2 or w < 2:
        raise ValueError(f"neighbour replacements need H, W ≥ 2, got a mask of shape {tuple(mask.shape)}")
    dev = mask.device
    side = 2 * radius + 1
    n = torch.arange(side * side - 1, device=dev)
    n = n + (n >= side * side // 2).long()      # skip the centre offset (0, 0); made on the device
    di, dj = n // side - radius, n % side - radius
    i = torch.arange(h, device=dev)
    j = torch.arange(w, device=dev)
    rows = _reflect(i[None] + di[:, None], h)   # (K, H)
    cols = _reflect(j[None] + dj[:, None], w)   # (K, W)
    not_centre = ((rows != i)[:, :, None] | (cols != j)[:, None, :]).unsqueeze(0)   # (1, K, H, W)
    m = mask[:, 0]
    masked_nb = torch.stack([m[:, rows[k]][:, :, cols[k]] for k in range(rows.shape[0])], 1)
    free = not_centre & ~masked_nb
    usable = torch.where(free.any(1, keepdim=True), free, not_centre)
    return rows, cols, usable


def ups(y: torch.Tensor, mask: torch.Tensor, *, radius: int = 2,
        generator: torch.Generator) -> torch.Tensor:
    """Uniform pixel selection (Noise2Void, Krull et al. 2019, Sec. 3), excluding the centre.

    Each masked pixel takes the value (all channels) of one neighbour chosen uniformly
    among the ``(2·radius+1)² − 1`` offsets of its neighbourhood other than ``(0, 0)``,
    reflected at the border (an offset that reflects back onto the pixel itself is not
    used); neighbours that are masked themselves are not used either, unless all are
    (see the module docstring). Noise2Void's first implementation could pick the
    centre, which leaks the pixel into its own input (Noise2Same §3.2); this one never
    does. Computed densely: one uniform draw per pixel (B·H·W numbers), no host round trip.

    Args:
        y: float (B, C, H, W) with H, W ≥ 2. mask: bool (B, 1, H, W).
        radius: r ≥ 1 (default 2: the 5×5 neighbourhood of Noise2Void).
        generator: source of randomness.

    Returns:
        tensor like ``y`` holding the replacement values at masked pixels and ``y`` elsewhere.

    Raises:
        TypeError / ValueError: bad ``y``, ``mask``, ``radius`` or generator; H or W < 2.
    """
    _check_image(y)
    _check_mask(mask, y)
    if not isinstance(radius, int) or isinstance(radius, bool) or radius < 1:
        raise ValueError(f"radius must be an integer ≥ 1, got {radius!r}")
    _check_generator(generator, "ups")
    b, c, h, w = y.shape
    rows, cols, usable = _neighbourhood(mask, radius)
    k = rows.shape[0]
    count = usable.sum(1, keepdim=True)                                        # (B, 1, H, W), ≥ 1
    u = torch.rand((b, 1, h, w), generator=generator, device=generator.device).to(y.device)
    target = torch.minimum((u * count).long(), count - 1)                      # uniform in [0, count)
    pick = ((usable.cumsum(1) == target + 1) & usable).to(torch.uint8).argmax(1, keepdim=True)
    src_i = rows.view(1, k, h, 1).expand(b, k, h, w).gather(1, pick)
    src_j = cols.view(1, k, 1, w).expand(b, k, h, w).gather(1, pick)
    flat = (src_i * w + src_j).view(b, 1, h * w).expand(b, c, h * w)
    vals = y.flatten(2).gather(2, flat).view_as(y)
    return torch.where(mask, vals, y)


def donut(y: torch.Tensor, mask: torch.Tensor, *, kernel_size: int = 3,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Local mean excluding the centre (Noise2Self's "donut", Batson & Royer 2019; Noise2Same §5.1).

    Each masked pixel takes, channel by channel, the plain mean of the
    ``kernel_size² − 1`` other offsets of its ``k×k`` neighbourhood (reflected at the
    border); masked neighbours are left out of the mean (see the module docstring).
    Deterministic (``generator`` is accepted for a uniform interface and ignored).
    Computed densely, with no host round trip.

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
    rows, cols, usable = _neighbourhood(mask, kernel_size // 2)
    wts = usable.to(y.dtype)
    total = torch.zeros_like(y)
    for k in range(rows.shape[0]):
        total = total + wts[:, k:k + 1] * y[:, :, rows[k]][:, :, :, cols[k]]
    return torch.where(mask, total / wts.sum(1, keepdim=True), y)


def random_uniform(y: torch.Tensor, mask: torch.Tensor, *, low: float = 0.0, high: float = 1.0,
                   generator: torch.Generator) -> torch.Tensor:
    """Noise2Self's noise masking: i.i.d. ``U(low, high)`` values at masked entries.

    Default [0, 1], the range of the library's images (Noise2Same §5.1 describes
    Noise2Self's replacement as "a random value on the range of given image data").
    Every channel of a masked pixel gets its own draw.

    Raises:
        ValueError: ``low > high``. TypeError: no generator.
    """
    _check_image(y)
    _check_mask(mask, y)
    if not low <= high:
        raise ValueError(f"need low ≤ high, got [{low}, {high}]")
    _check_generator(generator, "random_uniform")
    u = torch.rand(y.shape, generator=generator, dtype=y.dtype, device=generator.device)
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
             generator: torch.Generator) -> torch.Tensor:
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
        ValueError: negative ``sigma``. TypeError: no generator.
    """
    _check_image(y)
    _check_mask(mask, y)
    if not sigma >= 0:
        raise ValueError(f"sigma must be ≥ 0, got {sigma!r}")
    _check_generator(generator, "gaussian")
    n = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=generator.device)
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
        generator: randomness; required by the random strategies ("ups", "random",
            "gaussian"), ignored by "donut" and "zero".
        **options: passed to the strategy (``radius`` for ups, ``kernel_size`` for
            donut, ``low``/``high`` for random, ``sigma``/``relative`` for gaussian).

    Returns:
        a new tensor like ``y``; unmasked entries are exactly ``y``'s.

    Raises:
        ValueError: unknown strategy (the message lists them) or bad options.
        TypeError: a random strategy without a generator.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown replacement strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[strategy](y, mask, generator=generator, **options)


def apply_mask(y: torch.Tensor, mask: torch.Tensor, strategy: str = "ups", *,
               generator: torch.Generator | None = None, **options) -> torch.Tensor:
    """Alias of :func:`replace` (the masked input :math:`y_{J^c}` for a given mask)."""
    return replace(y, mask, strategy, generator=generator, **options)


def mask_batch(y: torch.Tensor, fraction: float, strategy: str = "ups", *,
               generator: torch.Generator, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a stratified mask for a batch and replace the masked pixels.

    Args:
        y: noisy batch, float (B, C, H, W).
        fraction: mask fraction in (0, 1/4] (:func:`stratified_mask`).
        strategy, **options: see :func:`replace`.
        generator: randomness for both the mask and the replacement (in a loss,
            ``batch.generator``); the mask is drawn first, then the replacement.

    Returns:
        ``(masked, mask)``: the network input :math:`y_{J^c}` (same shape and dtype as
        ``y``) and the boolean mask (B, 1, H, W) on ``y``'s device.

    Raises:
        TypeError: ``y`` is not a float NCHW tensor, or no generator. ValueError: bad
            fraction or strategy.
    """
    _check_image(y)
    _check_generator(generator, "mask_batch")
    mask = stratified_mask(y.shape, fraction, generator=generator, device=y.device)
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
        scalar tensor (differentiable in ``a`` and ``b``); 0 for an empty mask (the
        count is clamped to 1, so that no host round trip checks it;
        :func:`stratified_mask` never returns an empty mask).

    Raises:
        ValueError: mismatched shapes. TypeError: a non-boolean mask.
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    _check_mask(mask, a)
    count = mask.sum().clamp_min(1)
    sq = ((a - b) ** 2).masked_fill(~mask, 0.0)
    return sq.sum() / (count * a.shape[1])
