"""Neighbour sub-samplers of Neighbor2Neighbor, and the Monte-Carlo check of its Theorem 1.

Huang et al. (2021), "Neighbor2Neighbor: self-supervised denoising from single noisy
images", §4.1 (the sampler, their Fig. 2), §5.3 (the fixed-location sampler of their
Table 4) and §3.2 (Theorem 1, their Eq. (2)). Book: Part 5,
``book/05_neighbor2neighbor_theory.md`` ("the page" below). Notation: ``y`` noisy,
``x`` clean, images float NCHW.

**The sampler** (k = 2). The image is cut into ``⌊H/2⌋ × ⌊W/2⌋`` cells of 2×2 pixels.
The pixels of a cell are numbered row by row::

    0 1
    2 3

In every cell one of the 8 **ordered** pairs of 4-adjacent pixels is chosen
(:data:`PAIRS`: 0→1, 0→2, 1→3, 2→3 and the four reversed pairs); the first pixel goes
to ``g1(y)``, the second to ``g2(y)``, both at position (i, j) of two half-resolution
images. The same choice applies to every channel. A choice is an object
(:class:`NeighbourChoice`) so that the **same** ``g1, g2`` can be applied to another
image of the same size, e.g. the network output ``f(y)`` in the regulariser of their
Eq. (7).

* ``"random"`` — each cell draws its pair independently and uniformly (their §4.1).
* ``"fixed"`` — the fixed-location sampler of their Table 4: every cell of an image
  uses the same pair. The paper (§5.3) builds the four sub-images made of one
  position of every cell and picks two of them at random; its details are in a
  supplement we do not have. Because the paper calls it "a special case of our
  method", the pair is drawn here among the same 8 ordered neighbour pairs, once per
  image (not per cell); ``pair=`` pins one pair for every image instead.

**Odd sizes.** As the paper's ``⌊W/k⌋ × ⌊H/k⌋`` cells: with ``odd="crop"`` (default)
the last row and/or column of an odd-sized image belongs to no cell and is used by
neither sub-image; ``odd="raise"`` raises a ``ValueError`` instead. An image with
fewer than 2 rows or columns always raises.

**Theorem 1** (page, Theorem 1 and its proof). For a fixed ``f``, a target ``z``
conditionally independent of the input ``y`` given ``x``, with ``E[z|x] = x + ε`` and
mean conditional variance ``σ_z²`` (per entry), the per-entry means satisfy

    E‖f(y) − x‖² = E‖f(y) − z‖² − σ_z² + 2 E⟨ε, f(y) − x⟩ − E‖ε‖².

The paper's Eq. (2) omits the last term. :func:`theorem1_terms` computes every term per
draw, :func:`theorem1_check` and :func:`theorem1_check_subsampled` estimate both sides
with standard errors (for a given ε, and for the sub-sampled pairs where
``ε = g2(x) − g1(x)``), and :class:`Theorem1Check` says whether they agree.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.nn import functional as F

__all__ = ["PAIRS", "SAMPLERS", "ODD_POLICIES", "VARIANTS", "half_size", "check_sampler", "draw_codes",
           "NeighbourChoice", "choose", "subsample", "plot_choice", "subpixel_shift", "theorem1_terms",
           "Theorem1Check", "summarise", "theorem1_check", "theorem1_check_subsampled"]

#: The 8 ordered pairs (position of the g1 pixel, position of the g2 pixel) of 4-adjacent
#: pixels in a 2×2 cell whose pixels are numbered 0 1 / 2 3. Code ``c`` of a cell means
#: the pair ``PAIRS[c]``.
PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 3), (2, 3), (1, 0), (2, 0), (3, 1), (3, 2))
SAMPLERS = ("random", "fixed")
ODD_POLICIES = ("crop", "raise")
VARIANTS = ("correct", "paper", "n2n")

_PAIRS_T = torch.tensor(PAIRS, dtype=torch.long)


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


def check_sampler(sampler: str, pair: int | None = None) -> None:
    """Validate a sampler name and an optional pinned pair (no randomness is used).

    Raises:
        ValueError: unknown sampler; ``pair`` not an integer in 0..7, or given with ``"random"``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if pair is not None:
        if sampler != "fixed":
            raise ValueError("pair= pins the pair of the fixed-location sampler; it cannot be used with 'random'")
        try:
            index = operator.index(pair)
        except TypeError:
            index = None
        if isinstance(pair, bool) or index is None or not 0 <= index < len(PAIRS):
            raise ValueError(f"pair must be an integer in 0..{len(PAIRS) - 1}, got {pair!r}")


def draw_codes(n: int, h2: int, w2: int, *, sampler: str = "random", generator: torch.Generator | None = None,
               pair: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """Pair codes (indices into :data:`PAIRS`) for ``n`` images of ``h2 × w2`` cells.

    Args:
        sampler: ``"random"`` (one uniform code per cell) or ``"fixed"`` (one code per
            image, shared by its cells; uniform over the 8 pairs unless ``pair`` is given).
        generator: source of randomness (default: torch's global generator of ``device``).
            Codes are drawn on the generator's device and moved to ``device``.
        pair: for ``"fixed"`` only, the code (0–7) used for every image.
        device: device of the result (default: the generator's, else CPU).

    Returns:
        int64 tensor (n, h2, w2) with values in 0..7.

    Raises:
        ValueError: unknown sampler; ``pair`` outside 0..7 or given with ``"random"``.
    """
    check_sampler(sampler, pair)
    gen_device = generator.device if generator is not None else torch.device(device or "cpu")
    out_device = torch.device(device) if device is not None else gen_device
    if sampler == "random":
        codes = torch.randint(0, len(PAIRS), (n, h2, w2), generator=generator, device=gen_device)
    elif pair is not None:
        codes = torch.full((n, 1, 1), int(pair), dtype=torch.long, device=gen_device)
    else:
        codes = torch.randint(0, len(PAIRS), (n, 1, 1), generator=generator, device=gen_device)
    return codes.to(out_device).expand(n, h2, w2)


class NeighbourChoice:
    """One draw of the neighbour sub-sampler ``G = (g1, g2)`` for a batch of H×W images.

    Apply it to any tensor of shape ``(N, C, H, W)`` (any C, any float or integer
    dtype) with :meth:`apply`; the same object applied to ``y`` and to ``f(y)`` gives
    ``g1(y), g2(y)`` and ``g1(f(y)), g2(f(y))`` with the same choice (their Eq. (7)).

    Attributes:
        codes: int64 (N, h2, w2), the pair code of every cell (index into :data:`PAIRS`).
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
        pos = _PAIRS_T.to(codes.device)[codes]                           # (N, h2, w2, 2) in 0..3
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
           pair: int | None = None, odd: str = "crop") -> NeighbourChoice:
    """Draw a neighbour sub-sampler for the images ``y`` (N, C, H, W) (their §4.1 / Table 4).

    The choice lives on ``y.device``. With ``generator=None`` the codes come from
    torch's global generator of ``y.device`` (seeded and checkpointed by
    :func:`denoise_lib.train.fit`); otherwise from ``generator`` (any device).

    Raises:
        ValueError: not a 4-D tensor; H or W < 2; odd size with ``odd="raise"``; bad
            ``sampler``/``pair``/``odd`` (see :func:`half_size`, :func:`draw_codes`).
    """
    if not isinstance(y, torch.Tensor) or y.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    n, _, h, w = y.shape
    h2, w2 = half_size(h, w, odd)
    codes = draw_codes(n, h2, w2, sampler=sampler, generator=generator, pair=pair,
                       device=y.device if generator is None else None)
    return NeighbourChoice(codes.to(y.device), h, w)


def subsample(y: torch.Tensor, *, sampler: str = "random", generator: torch.Generator | None = None,
              pair: int | None = None, odd: str = "crop") -> tuple[torch.Tensor, torch.Tensor]:
    """``(g1(y), g2(y))`` for a freshly drawn sampler (:func:`choose`); each (N, C, ⌊H/2⌋, ⌊W/2⌋).

    Use :func:`choose` and :meth:`NeighbourChoice.apply` when the same choice must be
    applied to another image (the regulariser).
    """
    return choose(y, sampler=sampler, generator=generator, pair=pair, odd=odd).apply(y)


def plot_choice(choice: NeighbourChoice, *, index: int = 0, cells: tuple[int, int] = (4, 4),
                origin: tuple[int, int] = (0, 0), ax=None, title: str | None = None):
    """Draw part of a sampler: cell borders, the ``g1`` pixel (red) and the ``g2`` pixel (blue) of each cell.

    Args:
        choice: a drawn sampler.
        index: which image of the batch.
        cells: ``(rows, cols)`` of cells to draw.
        origin: ``(i, j)`` of the top-left cell drawn.
        ax: a matplotlib axis (default: a new figure).
        title: axis title.

    Returns:
        the matplotlib axis (the caller shows the figure).
    """
    import matplotlib.pyplot as plt

    h2, w2 = choice.sub_size
    i0, j0 = origin
    ni, nj = min(cells[0], h2 - i0), min(cells[1], w2 - j0)
    if ni < 1 or nj < 1:
        raise ValueError(f"no cell to draw: origin {origin} outside the {h2}×{w2} cells")
    m1, m2 = (m[index, 0, 2 * i0:2 * (i0 + ni), 2 * j0:2 * (j0 + nj)].cpu().float() for m in choice.masks())
    rgb = torch.full((2 * ni, 2 * nj, 3), 0.92)
    rgb[m1.bool()] = torch.tensor([0.85, 0.15, 0.1])
    rgb[m2.bool()] = torch.tensor([0.1, 0.3, 0.85])
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * 2 * nj + 0.5, 0.5 * 2 * ni + 0.5))
    ax.imshow(rgb.numpy(), interpolation="nearest")
    for k in range(ni + 1):
        ax.axhline(2 * k - 0.5, color="k", lw=1.5)
    for k in range(nj + 1):
        ax.axvline(2 * k - 0.5, color="k", lw=1.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def subpixel_shift(x: torch.Tensor, dy: float, dx: float) -> torch.Tensor:
    """``x`` moved by ``(dy, dx)`` pixels (down, right), bilinear interpolation, border values replicated.

    Used to make a known, small gap ``ε = subpixel_shift(x, …) − x`` between two clean
    images for the Monte-Carlo check of Theorem 1.

    Args:
        x: float (N, C, H, W).
        dy, dx: shifts in pixels (any real numbers).

    Returns:
        float tensor of the same shape and dtype.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError("x must be a float (N, C, H, W) tensor")
    n, _, h, w = x.shape
    # sample the input at (row − dy, col − dx), in the [-1, 1] coordinates of grid_sample
    ys = (torch.arange(h, dtype=x.dtype, device=x.device) - dy) * (2 / max(h - 1, 1)) - 1
    xs = (torch.arange(w, dtype=x.dtype, device=x.device) - dx) * (2 / max(w - 1, 1)) - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).expand(n, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


# ----------------------------------------------------------------------------------------
# Theorem 1 (their Eq. (2)), Monte-Carlo check
# ----------------------------------------------------------------------------------------

def theorem1_terms(out: torch.Tensor, clean: torch.Tensor, target: torch.Tensor, eps: torch.Tensor,
                   target_var: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every term of Theorem 1 for each draw, as per-entry means (float64).

    All arguments broadcast to a common (M, C, H, W) shape; row ``m`` is one draw.

    Args:
        out: ``f(y)``, the output for the input ``y``.
        clean: ``x``, the clean image whose noisy version is the input (``E[y|x] = x``).
        target: ``z``, the noisy target, conditionally independent of ``y`` given ``x``.
        eps: ``ε = E[z|x] − x``.
        target_var: ``Var[z|x]`` per entry (e.g. ``noise.variance(x + ε)``).

    Returns:
        ``{"supervised": mean (f − x)², "target_mse": mean (f − z)², "sigma2": mean Var[z|x],
        "cross": 2·mean ε·(f − x), "eps2": mean ε²}``, each a float64 tensor (M,).
    """
    out, clean, target, eps, var = torch.broadcast_tensors(
        *(t.detach().double() for t in (out, clean, target, eps, target_var)))
    dims = tuple(range(1, out.ndim))
    err = out - clean
    return {"supervised": err.square().mean(dims), "target_mse": (out - target).square().mean(dims),
            "sigma2": var.mean(dims), "cross": 2 * (eps * err).mean(dims), "eps2": eps.square().mean(dims)}


def _rhs(terms: dict[str, torch.Tensor], variant: str) -> torch.Tensor:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    rhs = terms["target_mse"] - terms["sigma2"]
    if variant in ("correct", "paper"):
        rhs = rhs + terms["cross"]
    if variant == "correct":
        rhs = rhs - terms["eps2"]
    return rhs


def _mean_se(v: torch.Tensor) -> tuple[float, float]:
    m = v.numel()
    se = float(v.std(unbiased=True)) / math.sqrt(m) if m > 1 else float("nan")
    return float(v.mean()), se


@dataclass(frozen=True)
class Theorem1Check:
    """Monte-Carlo estimates of the two sides of Theorem 1 (per-entry means).

    Attributes:
        variant: which right side: ``"correct"`` (the page's identity),
            ``"paper"`` (their Eq. (2) as printed, without ``−E‖ε‖²``) or ``"n2n"``
            (no ε terms at all: the Noise2Noise identity).
        lhs, lhs_se: mean and standard error of ``‖f(y) − x‖²/d`` over the draws.
        rhs, rhs_se: the same for the right side of ``variant``.
        diff, diff_se: mean and standard error of the paired difference lhs − rhs
            (each draw gives both sides, so the paired error is the one to test with).
        draws: number of independent draws M.
        terms: the mean of every term of :func:`theorem1_terms`.
    """

    variant: str
    lhs: float
    lhs_se: float
    rhs: float
    rhs_se: float
    diff: float
    diff_se: float
    draws: int
    terms: dict = field(default_factory=dict)

    def agrees(self, k: float = 3.0) -> bool:
        """True when ``|lhs − rhs| ≤ k`` standard errors of the paired difference."""
        return abs(self.diff) <= k * self.diff_se + 1e-15

    def z_score(self) -> float:
        """``(lhs − rhs) / se``: the difference in units of its standard error."""
        return self.diff / self.diff_se if self.diff_se > 0 else (0.0 if self.diff == 0 else math.inf)

    def __str__(self) -> str:
        return (f"{self.variant:<8} lhs = {self.lhs:.6e} ± {self.lhs_se:.1e}   rhs = {self.rhs:.6e} ± "
                f"{self.rhs_se:.1e}   lhs − rhs = {self.diff:+.2e} ± {self.diff_se:.1e} "
                f"({self.z_score():+.1f} s.e.)")


def summarise(terms: dict[str, torch.Tensor], variant: str = "correct") -> Theorem1Check:
    """Both sides of Theorem 1 from per-draw terms (:func:`theorem1_terms`), with standard errors.

    Raises:
        ValueError: unknown variant.
    """
    lhs = terms["supervised"]
    rhs = _rhs(terms, variant)
    (a, a_se), (b, b_se), (d, d_se) = _mean_se(lhs), _mean_se(rhs), _mean_se(lhs - rhs)
    return Theorem1Check(variant, a, a_se, b, b_se, d, d_se, int(lhs.numel()),
                         {k: float(v.mean()) for k, v in terms.items()})


def _concat(chunks: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def _check_draws(draws: int, batch: int) -> None:
    if draws < 2 or batch < 1:
        raise ValueError(f"need draws ≥ 2 (for a standard error) and batch ≥ 1, got draws={draws}, batch={batch}")


def _as_single(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != 1 or not x.is_floating_point():
        raise ValueError(f"{name} must be a float (1, C, H, W) tensor")
    return x


@torch.no_grad()
def theorem1_check(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: torch.Tensor, noise, *,
                   draws: int = 64, generator: torch.Generator | None = None, batch: int = 16,
                   variants=VARIANTS) -> dict[str, Theorem1Check]:
    """Monte-Carlo check of Theorem 1 for noisy pairs whose clean images differ by ``eps``.

    Each draw: ``y = noise(x)`` and, independently, ``z = noise(x + eps)``, so
    ``E[y|x] = x``, ``E[z|x] = x + ε`` and ``Var[z|x] = noise.variance(x + eps)``.

    Args:
        f: a fixed function (N, C, H, W) → same shape (called under ``no_grad``).
        x: clean image (1, C, H, W). eps: the gap ε, same shape.
        noise: a :class:`~denoise_lib.noise.NoiseModel` (pixel-wise independent noise).
        draws: number of independent draws (≥ 2). batch: draws per call of ``f``.
        generator: source of the noise.
        variants: right sides to evaluate (see :class:`Theorem1Check`).

    Returns:
        ``{variant: Theorem1Check}``.

    Raises:
        ValueError: shapes, ``draws < 2``, unknown variant; the noise model's own errors
            (e.g. Poisson noise on a negative ``x + eps``).
    """
    from .noise import parse_noise

    noise = parse_noise(noise)
    _as_single(x, "x")
    if not isinstance(eps, torch.Tensor) or eps.shape != x.shape:
        raise ValueError(f"eps must have the shape of x {tuple(x.shape)}")
    _check_draws(draws, batch)
    mean_z = x + eps
    var_z = noise.variance(mean_z)
    chunks = []
    for start in range(0, draws, batch):
        b = min(batch, draws - start)
        y = noise(x.expand(b, -1, -1, -1).contiguous(), generator)
        z = noise(mean_z.expand(b, -1, -1, -1).contiguous(), generator)
        chunks.append(theorem1_terms(f(y), x, z, eps, var_z))
    terms = _concat(chunks)
    return {v: summarise(terms, v) for v in variants}


@torch.no_grad()
def theorem1_check_subsampled(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, noise, *,
                              draws: int = 64, generator: torch.Generator | None = None, batch: int = 16,
                              sampler: str = "random", variants=VARIANTS) -> dict[str, Theorem1Check]:
    """Monte-Carlo check of Theorem 1 on Neighbor2Neighbor's sub-sampled pairs (their §3.3).

    Each draw: ``y = noise(x)`` and a fresh sampler ``G``; input ``g1(y)``, target
    ``z = g2(y)``, clean ``g1(x)``, gap ``ε = g2(x) − g1(x)``, target variance
    ``g2(noise.variance(x))``. The two sub-images use different pixels, so for
    pixel-wise independent noise they are independent given ``(x, G)``.

    Args and returns as :func:`theorem1_check` (``f`` acts on the half-size sub-image);
    ``sampler`` is ``"random"`` or ``"fixed"``.
    """
    from .noise import parse_noise

    noise = parse_noise(noise)
    _as_single(x, "x")
    _check_draws(draws, batch)
    var = noise.variance(x)
    chunks = []
    for start in range(0, draws, batch):
        b = min(batch, draws - start)
        xb = x.expand(b, -1, -1, -1).contiguous()
        y = noise(xb, generator)
        choice = choose(y, sampler=sampler, generator=generator)
        g1y, g2y = choice.apply(y)
        g1x, g2x = choice.apply(xb)
        chunks.append(theorem1_terms(f(g1y), g1x, g2y, g2x - g1x, choice.take(var.expand_as(xb), 2)))
    terms = _concat(chunks)
    return {v: summarise(terms, v) for v in variants}
