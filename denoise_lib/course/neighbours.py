"""Monte-Carlo check of Theorem 1 of Neighbor2Neighbor (course material, Part 5).

Huang et al. (2021), "Neighbor2Neighbor: self-supervised denoising from single noisy
images", §3.2 (Theorem 1, their Eq. (2)) and §3.3 (the sub-sampled pairs). Book:
Part 5, Theorem 1 and its proof. Notation: ``y`` noisy, ``x`` clean, images float NCHW.

For a fixed ``f``, a target ``z`` conditionally independent of the input ``y`` given
``x``, with ``E[z|x] = x + ε`` and mean conditional variance ``σ_z²`` (per entry), the
per-entry means satisfy

    E‖f(y) − x‖² = E‖f(y) − z‖² − σ_z² + 2 E⟨ε, f(y) − x⟩ − E‖ε‖².

The paper's Eq. (2) omits the last term. :func:`theorem1_terms` computes every term per
draw, :func:`theorem1_check` and :func:`theorem1_check_subsampled` estimate both sides
with standard errors (for a given ε, and for the sub-sampled pairs where
``ε = g2(x) − g1(x)``), and :class:`Theorem1Check` says whether they agree.
:func:`subpixel_shift` makes a known, small gap ε between two clean images.
:func:`check_table` shows checks as a table; :func:`sampler_figure` draws the
sub-samplers' cells and the 12 ordered pairs of a cell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.nn import functional as F

from ..subsample import choose

__all__ = ["VARIANTS", "subpixel_shift", "theorem1_terms", "Theorem1Check", "summarise", "theorem1_check",
           "theorem1_check_subsampled", "check_table", "sampler_figure"]

#: Right sides of Theorem 1 that :func:`theorem1_check` evaluates (see :class:`Theorem1Check`).
VARIANTS = ("correct", "paper", "n2n")


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
        variant: which right side: ``"correct"`` (the identity above, Part 5),
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
        generator: source of the noise (None: torch's global generator).
        variants: right sides to evaluate (see :class:`Theorem1Check`).

    Returns:
        ``{variant: Theorem1Check}``.

    Raises:
        ValueError: shapes, ``draws < 2``, unknown variant; the noise model's own errors
            (e.g. Poisson noise on a negative ``x + eps``).
    """
    from ..noise import parse_noise

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
                              sampler: str = "random", diagonal: bool | None = None,
                              variants=VARIANTS) -> dict[str, Theorem1Check]:
    """Monte-Carlo check of Theorem 1 on Neighbor2Neighbor's sub-sampled pairs (their §3.3).

    Each draw: ``y = noise(x)`` and a fresh sampler ``G``; input ``g1(y)``, target
    ``z = g2(y)``, clean ``g1(x)``, gap ``ε = g2(x) − g1(x)``, target variance
    ``g2(noise.variance(x))``. The two sub-images use different pixels, so for
    pixel-wise independent noise they are independent given ``(x, G)``.

    Args and returns as :func:`theorem1_check` (``f`` acts on the half-size sub-image);
    ``sampler`` is ``"random"`` or ``"fixed"``; ``diagonal`` as :func:`denoise_lib.subsample.choose`.
    """
    from ..noise import parse_noise

    noise = parse_noise(noise)
    _as_single(x, "x")
    _check_draws(draws, batch)
    var = noise.variance(x)
    chunks = []
    for start in range(0, draws, batch):
        b = min(batch, draws - start)
        xb = x.expand(b, -1, -1, -1).contiguous()
        y = noise(xb, generator)
        choice = choose(y, sampler=sampler, generator=generator, diagonal=diagonal)
        g1y, g2y = choice.apply(y)
        g1x, g2x = choice.apply(xb)
        chunks.append(theorem1_terms(f(g1y), g1x, g2y, g2x - g1x, choice.take(var.expand_as(xb), 2)))
    terms = _concat(chunks)
    return {v: summarise(terms, v) for v in variants}


def check_table(checks: dict, *, scale: float = 1e3, caption: str | None = None):
    """The checks of :func:`theorem1_check` as a :class:`~denoise_lib.course.report.Table`.

    Columns: the right side used, lhs, rhs, lhs − rhs, its standard error (all × ``scale``)
    and the difference in standard errors.
    """
    from .report import table

    names = {"correct": "corrected Theorem 1", "paper": "Eq. (2) as printed", "n2n": "Noise2Noise (no ε terms)"}
    rows = [[names.get(v, v), scale * c.lhs, scale * c.rhs, f"{scale * c.diff:+.4f}", scale * c.diff_se,
             f"{c.z_score():+.1f}"] for v, c in checks.items()]
    return table(["right side", "lhs", "rhs", "lhs − rhs", "s.e.", "(lhs − rhs)/s.e."], rows,
                 digits=[None, 4, 4, None, 4, None],
                 caption=caption or ("Per-entry values × 10³." if scale == 1e3 else f"Per-entry values × {scale:g}."))


def sampler_figure(*, cells: tuple[int, int] = (3, 3), seed: int = 0, width: float = 7.0):
    """The sub-samplers on a grid of ``cells``: random, fixed-location (an adjacent and a diagonal pair),
    and the pairs of a 2×2 cell (4 adjacent, solid; 2 diagonal, dashed; each in both orders:
    the 8 + 4 ordered pairs of :data:`~denoise_lib.subsample.ALL_PAIRS`).

    Red pixels go to ``g1`` (the input), blue ones to ``g2`` (the target), grey ones to neither.

    Returns:
        the matplotlib figure (not shown).
    """
    import matplotlib.pyplot as plt

    from ..subsample import ALL_PAIRS, PAIRS
    from .plots import plot_choice

    h, w = 2 * cells[0], 2 * cells[1]
    y = torch.zeros(1, 1, h, w)
    gen = torch.Generator().manual_seed(seed)
    panels = [(choose(y, generator=gen), "random:\none adjacent pair per cell"),
              (choose(y, sampler="fixed", pair=0), "fixed-location:\npair 0→1 in every cell"),
              (choose(y, sampler="fixed", pair=len(PAIRS)), "fixed-location:\ndiagonal pair 0→3")]
    fig, axes = plt.subplots(1, 4, figsize=(width, 0.36 * width))
    for ax, (choice, title) in zip(axes, panels):
        plot_choice(choice, cells=cells, ax=ax, title=title)
        ax.title.set_fontsize(10)
    ax = axes[3]
    pos = {0: (0.0, 1.0), 1: (1.0, 1.0), 2: (0.0, 0.0), 3: (1.0, 0.0)}
    adjacent = {frozenset(p) for p in PAIRS}
    for a, b in {frozenset(p) for p in ALL_PAIRS}:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        dx, dy = x1 - x0, y1 - y0
        near = frozenset((a, b)) in adjacent
        ax.annotate("", xy=(x1 - 0.2 * dx, y1 - 0.2 * dy), xytext=(x0 + 0.2 * dx, y0 + 0.2 * dy),
                    arrowprops=dict(arrowstyle="<->", lw=1.4, color="0.15" if near else "C1",
                                    ls="-" if near else "--"))
    for p, (px, py) in pos.items():
        ax.text(px, py, str(p), ha="center", va="center", fontsize=11,
                bbox=dict(boxstyle="circle", fc="white", ec="0.3"))
    ax.set_xlim(-0.35, 1.35)
    ax.set_ylim(-0.35, 1.35)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("pairs of a cell\n(dashed: diagonal)", fontsize=10)
    fig.tight_layout()
    return fig
