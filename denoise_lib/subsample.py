"""Neighbour sub-samplers of Neighbor2Neighbor.

Huang et al. (2021), "Neighbor2Neighbor: self-supervised denoising from single noisy
images", §4.1 (the sampler, their Fig. 2) and §5.3 (the fixed-location sampler of their
Table 4). Book: Part 5. Notation: ``y`` noisy, ``x`` clean, images float NCHW.

**The sampler** (k = 2). The image is cut into ``⌊H/2⌋ × ⌊W/2⌋`` cells of 2×2 pixels.
The pixels of a cell are numbered row by row::

    0 1
    2 3

In every cell an **ordered** pair of pixels is chosen, by default one of the 8
ordered pairs of 4-adjacent pixels (:data:`PAIRS`: 0→1, 0→2, 1→3, 2→3 and the four
reversed pairs; the fixed-location sampler adds the diagonal pairs, below); the first
pixel goes to ``g1(y)``, the second to ``g2(y)``, both at position (i, j) of two half-resolution
images. The same choice applies to every channel. A choice is an object
(:class:`NeighbourChoice`) so that the **same** ``g1, g2`` can be applied to another
image of the same size, e.g. the network output ``f(y)`` in the regulariser of their
Eq. (7).

* ``"random"`` — each cell draws its pair independently and uniformly among the 8
  ordered 4-adjacent pairs (their §4.1: "two neighboring locations are randomly
  selected"; the authors' code draws from the same 8).
* ``"fixed"`` — the fixed-location sampler of their Table 4 (§5.3): every cell of an
  image uses the same pair. The paper generates "k² sub-sampled images", each made of
  one position of every cell, and "two sub-sampled images are randomly selected from
  these k² images". Two of the six unordered pairs of positions, {0, 3} and {1, 2},
  are **diagonal**, so that construction includes diagonal pairs. By default
  (``diagonal=None``) the fixed sampler therefore draws, once per image, one of the
  12 ordered pairs of distinct positions (:data:`ALL_PAIRS`: the 8 of :data:`PAIRS`
  and the 4 of :data:`DIAGONAL_PAIRS`), as the paper does; ``diagonal=False``
  restricts it to the 8 neighbour pairs. ``pair=`` pins one code (0–11) for every image.

``diagonal=True`` with ``"random"`` gives a random sampler over all 12 pairs (not the
paper's). A diagonal pair's gap ``g2(x) − g1(x)`` is a diagonal difference, larger
on average than a 4-adjacent one.

**Odd sizes.** As the paper's ``⌊W/k⌋ × ⌊H/k⌋`` cells: with ``odd="crop"`` (default)
the last row and/or column of an odd-sized image belongs to no cell and is used by
neither sub-image; ``odd="raise"`` raises a ``ValueError`` instead. An image with
fewer than 2 rows or columns always raises.

**Randomness.** Every draw comes from the ``generator`` argument; methods pass
``batch.generator``. Without one, torch's global generator of the device is used
(convenient in a notebook, never done by the library).

The Monte-Carlo check of their Theorem 1 and the sampler figure are course material:
:mod:`denoise_lib.course.neighbours` and :func:`denoise_lib.course.plots.plot_choice`.
"""
from __future__ import annotations

import operator

import torch

__all__ = ["PAIRS", "DIAGONAL_PAIRS", "ALL_PAIRS", "SAMPLERS", "ODD_POLICIES", "half_size", "uses_diagonal",
           "check_sampler", "draw_codes",
           "NeighbourChoice", "choose", "subsample"]

#: The 8 ordered pairs (position of the g1 pixel, position of the g2 pixel) of 4-adjacent
#: pixels in a 2×2 cell whose pixels are numbered 0 1 / 2 3. Code ``c`` of a cell means
#: the pair ``PAIRS[c]``.
PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 3), (2, 3), (1, 0), (2, 0), (3, 1), (3, 2))
#: The 4 ordered diagonal pairs of a cell, codes 8–11 (used by the fixed-location sampler).
DIAGONAL_PAIRS: tuple[tuple[int, int], ...] = ((0, 3), (1, 2), (3, 0), (2, 1))
#: Every ordered pair of distinct positions of a cell: code ``c`` means ``ALL_PAIRS[c]``.
ALL_PAIRS: tuple[tuple[int, int], ...] = PAIRS + DIAGONAL_PAIRS
SAMPLERS = ("random", "fixed")
ODD_POLICIES = ("crop", "raise")

_PAIRS_T = torch.tensor(ALL_PAIRS, dtype=torch.long)
_PAIRS_ON: dict[torch.device, torch.Tensor] = {}


def _pairs_on(device: torch.device) -> torch.Tensor:
    """:data:`ALL_PAIRS` as an int64 (12, 2) tensor on ``device``, copied there once."""
    t = _PAIRS_ON.get(device)
    if t is None:
        t = _PAIRS_ON[device] = _PAIRS_T.to(device)
    return t


def half_size(height: int, width: int, odd: str = "crop") -> tuple[int, int]:
    """Size ``(⌊H/2⌋, ⌊W/2⌋)`` of the sub-images of an H×W image.

    Raises:
        ValueError: H or W below 2; H or W odd with ``odd="raise"``; unknown ``odd``.
    """
    if odd not in ODD_POLICIES:
        raise ValueError(f"odd must be one of {ODD_POLICIES}, got {odd!r}")
    if height < 2 or width < 2:
        raise ValueError(f"neighbour sub-sampling needs at least 2×2 pixels, got {height}×{width}")
    if odd == "raise" and (height % 2 or width % 2):
        raise ValueError(f"neighbour sub-sampling with odd='raise' needs even sizes, got {height}×{width}; "
                         "crop or pad the image, or use odd='crop' (drops the last row/column)")
    return height // 2, width // 2


def uses_diagonal(sampler: str, diagonal: bool | None = None) -> bool:
    """Whether ``sampler`` draws diagonal pairs: ``diagonal``, or by default True for ``"fixed"``
    (the paper's construction) and False for ``"random"``."""
    return (sampler == "fixed") if diagonal is None else bool(diagonal)


def check_sampler(sampler: str, pair: int | None = None, diagonal: bool | None = None) -> None:
    """Validate a sampler name, an optional pinned pair and the diagonal switch (no randomness is used).

    Raises:
        ValueError: unknown sampler; ``diagonal`` not None/True/False; ``pair`` not an
            integer code of :data:`ALL_PAIRS` (0–11, or 0–7 with ``diagonal=False``), or
            given with ``"random"``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if diagonal is not None and not isinstance(diagonal, bool):
        raise ValueError(f"diagonal must be None, True or False, got {diagonal!r}")
    if pair is not None:
        if sampler != "fixed":
            raise ValueError("pair= pins the pair of the fixed-location sampler; it cannot be used with 'random'")
        n = len(ALL_PAIRS) if uses_diagonal(sampler, diagonal) else len(PAIRS)
        try:
            index = operator.index(pair)
        except TypeError:
            index = None
        if isinstance(pair, bool) or index is None or not 0 <= index < n:
            raise ValueError(f"pair must be an integer in 0..{n - 1}, got {pair!r}")


def draw_codes(n: int, h2: int, w2: int, *, sampler: str = "random", generator: torch.Generator | None = None,
               pair: int | None = None, device: torch.device | str | None = None,
               diagonal: bool | None = None) -> torch.Tensor:
    """Pair codes (indices into :data:`ALL_PAIRS`) for ``n`` images of ``h2 × w2`` cells.

    Args:
        sampler: ``"random"`` (one uniform code per cell) or ``"fixed"`` (one code per
            image, shared by its cells; uniform unless ``pair`` is given).
        generator: source of randomness (default: torch's global generator of ``device``).
            Codes are drawn on the generator's device and moved to ``device``.
        pair: for ``"fixed"`` only, the code used for every image.
        device: device of the result (default: the generator's, else CPU).
        diagonal: draw among all 12 ordered pairs (True) or the 8 neighbour pairs
            (False); default (None): True for ``"fixed"``, False for ``"random"``.

    Returns:
        int64 tensor (n, h2, w2) with values in 0..11 (0..7 without diagonal pairs).

    Raises:
        ValueError: as :func:`check_sampler`.
    """
    check_sampler(sampler, pair, diagonal)
    choices = len(ALL_PAIRS) if uses_diagonal(sampler, diagonal) else len(PAIRS)
    gen_device = generator.device if generator is not None else torch.device(device or "cpu")
    out_device = torch.device(device) if device is not None else gen_device
    if sampler == "random":
        codes = torch.randint(0, choices, (n, h2, w2), generator=generator, device=gen_device)
    elif pair is not None:
        codes = torch.full((n, 1, 1), int(pair), dtype=torch.long, device=gen_device)
    else:
        codes = torch.randint(0, choices, (n, 1, 1), generator=generator, device=gen_device)
    return codes.to(out_device).expand(n, h2, w2)


class NeighbourChoice:
    """One draw of the neighbour sub-sampler ``G = (g1, g2)`` for a batch of H×W images.

    Apply it to any tensor of shape ``(N, C, H, W)`` (any C, any float or integer
    dtype) with :meth:`apply`; the same object applied to ``y`` and to ``f(y)`` gives
    ``g1(y), g2(y)`` and ``g1(f(y)), g2(f(y))`` with the same choice (their Eq. (7)).

    Attributes:
        codes: int64 (N, h2, w2), the pair code of every cell (index into :data:`ALL_PAIRS`).
        height, width: H, W of the full-size images.
        index1, index2: int64 (N, h2·w2), flat indices ``row·W + col`` into the H×W
            image of the pixel that goes to ``g1`` / ``g2`` at each cell (row-major).
    """

    def __init__(self, codes: torch.Tensor, height: int, width: int):
        if codes.ndim != 3 or codes.dtype != torch.long:
            raise ValueError(f"codes must be an int64 tensor (N, h2, w2), got {codes.dtype} {tuple(codes.shape)}")
        n, h2, w2 = codes.shape
        if h2 != height // 2 or w2 != width // 2:
            raise ValueError(f"{h2}×{w2} cells do not fit a {height}×{width} image")
        self.codes, self.height, self.width = codes, int(height), int(width)
        pos = _pairs_on(codes.device)[codes]                           # (N, h2, w2, 2) in 0..3
        rows = 2 * torch.arange(h2, device=codes.device).view(1, h2, 1, 1) + pos // 2
        cols = 2 * torch.arange(w2, device=codes.device).view(1, 1, w2, 1) + pos % 2
        flat = (rows * width + cols).reshape(n, h2 * w2, 2)
        self.index1, self.index2 = flat[..., 0].contiguous(), flat[..., 1].contiguous()

    @property
    def batch(self) -> int:
        return int(self.codes.shape[0])

    @property
    def sub_size(self) -> tuple[int, int]:
        """``(h2, w2)``, the size of the sub-images."""
        return int(self.codes.shape[1]), int(self.codes.shape[2])

    def _check(self, img: torch.Tensor) -> None:
        if not isinstance(img, torch.Tensor) or img.ndim != 4:
            raise ValueError(f"expected an (N, C, H, W) tensor, got "
                             f"{tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__}")
        n, _, h, w = img.shape
        if (n, h, w) != (self.batch, self.height, self.width):
            raise ValueError(f"this choice was drawn for {self.batch} images of {self.height}×{self.width}, "
                             f"got {n} images of {h}×{w}")

    def take(self, img: torch.Tensor, which: int) -> torch.Tensor:
        """``g1(img)`` (``which=1``) or ``g2(img)`` (``which=2``): shape (N, C, h2, w2), dtype of ``img``.

        Differentiable with respect to ``img`` (a gather). Raises ValueError on a shape mismatch.
        """
        self._check(img)
        if which not in (1, 2):
            raise ValueError(f"which must be 1 or 2, got {which!r}")
        idx = self.index1 if which == 1 else self.index2
        n, c = img.shape[:2]
        h2, w2 = self.sub_size
        idx = idx.to(img.device).unsqueeze(1).expand(n, c, h2 * w2)
        return img.reshape(n, c, self.height * self.width).gather(2, idx).reshape(n, c, h2, w2)

    def apply(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g1(img), g2(img))``, each (N, C, ⌊H/2⌋, ⌊W/2⌋). Raises ValueError on a shape mismatch."""
        return self.take(img, 1), self.take(img, 2)

    def masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Boolean masks (N, 1, H, W) of the pixels that go to ``g1`` and to ``g2`` (for display)."""
        out = []
        for idx in (self.index1, self.index2):
            m = torch.zeros(self.batch, self.height * self.width, dtype=torch.bool, device=idx.device)
            m.scatter_(1, idx, True)
            out.append(m.view(self.batch, 1, self.height, self.width))
        return out[0], out[1]

    def __repr__(self) -> str:
        return f"NeighbourChoice(batch={self.batch}, size={self.height}×{self.width}, cells={self.sub_size})"


def choose(y: torch.Tensor, *, sampler: str = "random", generator: torch.Generator | None = None,
           pair: int | None = None, odd: str = "crop", diagonal: bool | None = None) -> NeighbourChoice:
    """Draw a neighbour sub-sampler for the images ``y`` (N, C, H, W) (their §4.1 / Table 4).

    The choice lives on ``y.device``. The codes come from ``generator`` (any device;
    methods pass ``batch.generator``), or with ``generator=None`` from torch's global
    generator of ``y.device``. ``diagonal``: see :func:`draw_codes` (default: the
    paper's, diagonal pairs only for ``"fixed"``).

    Raises:
        ValueError: not a 4-D tensor; H or W < 2; odd size with ``odd="raise"``; bad
            ``sampler``/``pair``/``odd``/``diagonal`` (see :func:`half_size`, :func:`draw_codes`).
    """
    if not isinstance(y, torch.Tensor) or y.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    n, _, h, w = y.shape
    h2, w2 = half_size(h, w, odd)
    codes = draw_codes(n, h2, w2, sampler=sampler, generator=generator, pair=pair,
                       device=y.device if generator is None else None, diagonal=diagonal)
    return NeighbourChoice(codes.to(y.device), h, w)


def subsample(y: torch.Tensor, *, sampler: str = "random", generator: torch.Generator | None = None,
              pair: int | None = None, odd: str = "crop",
              diagonal: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g1(y), g2(y))`` for a freshly drawn sampler (:func:`choose`); each (N, C, ⌊H/2⌋, ⌊W/2⌋).

    Use :func:`choose` and :meth:`NeighbourChoice.apply` when the same choice must be
    applied to another image (the regulariser).
    """
    return choose(y, sampler=sampler, generator=generator, pair=pair, odd=odd, diagonal=diagonal).apply(y)
