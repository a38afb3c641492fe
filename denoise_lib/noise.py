"""Noise models: Gaussian, Poisson and speckle, each seeded through a ``torch.Generator``.

All models act on clean images ``x`` as float32 NCHW tensors in [0, 1] and return
the noisy observation ``y`` with the same shape. Noise levels are in the same
[0, 1] units as the image: Gaussian σ = 25 on the 0–255 scale is ``25/255``.
Noisy images are **not clipped**: clipping would bias the noise
mean, which every self-supervised argument in the course assumes to be zero.

Definitions (book, Part 0, "Noise models and metrics"):

* Gaussian: ``y = x + σ·n``, ``n ~ N(0, 1)`` i.i.d.; ``σ`` fixed or drawn
  uniformly per image from ``[σ_lo, σ_hi]`` (blind denoising).
* Poisson: ``y = Poisson(λ·x) / λ``; ``E[y|x] = x``, ``Var[y|x] = x/λ``; λ fixed or
  drawn uniformly per image from a range.
* Speckle (SVID paper, Lin et al. 2022, Sec. 4): ``y = x + x·n`` with ``n``
  uniform, zero mean and variance ``v``, i.e. ``n ~ U(-√(3v), √(3v))``.

A spec string such as ``"gaussian:25"`` (σ on the 0–255 scale), ``"gaussian:5-50"``,
``"poisson:30"``, ``"poisson:5-50"`` or ``"speckle:0.1"`` is parsed by :func:`parse_noise`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["NoiseModel", "Gaussian", "Poisson", "Speckle", "parse_noise"]


def _per_image(lo: float, hi: float, n: int, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """Draw one level per image uniformly from [lo, hi], shaped (N, 1, 1, 1)."""
    if lo == hi:
        return torch.full((n, 1, 1, 1), lo, dtype=x.dtype, device=x.device)
    u = torch.rand((n, 1, 1, 1), generator=g, dtype=x.dtype, device=_gen_device(g, x))
    return (lo + (hi - lo) * u).to(x.device)


def _gen_device(g: torch.Generator | None, x: torch.Tensor) -> torch.device:
    return g.device if g is not None else x.device


def _check(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise TypeError("noise models take a float NCHW tensor; convert with denoise_lib.image.as_image")


@dataclass(frozen=True)
class NoiseModel:
    """Base class. Subclasses implement :meth:`__call__` and :meth:`variance`."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def variance(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel noise variance ``Var[y | x]`` averaged over the level range (same shape as x)."""
        raise NotImplementedError

    @property
    def sigma(self) -> float | None:
        """A representative Gaussian σ in [0, 1] units (the mid-range for Gaussian), else None."""
        return None

    @property
    def spec(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Gaussian(NoiseModel):
    """Additive white Gaussian noise ``y = x + σ n``, n ~ N(0, 1), not clipped.

    Args:
        sigma: σ in [0, 1] units (25/255 for "σ = 25"), or a ``(lo, hi)`` tuple to
            draw σ uniformly per image (blind denoising, as in Laine et al. 2019 §5
            and Neighbor2Neighbor §4.1).

    Raises:
        ValueError: negative σ or ``lo > hi``.
    """

    sigma_range: tuple[float, float] = (25 / 255, 25 / 255)

    def __init__(self, sigma: float | tuple[float, float] = 25 / 255):
        lo, hi = (sigma, sigma) if not isinstance(sigma, (tuple, list)) else sigma
        if not (0 <= lo <= hi) or not math.isfinite(hi):
            raise ValueError(f"Gaussian σ must satisfy 0 ≤ lo ≤ hi, got {sigma}")
        object.__setattr__(self, "sigma_range", (float(lo), float(hi)))

    def __call__(self, x, generator=None):
        _check(x)
        s = _per_image(*self.sigma_range, x.shape[0], x, generator)
        n = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=_gen_device(generator, x))
        return x + s * n.to(x.device)

    def variance(self, x):
        lo, hi = self.sigma_range
        return torch.full_like(x, (lo * lo + lo * hi + hi * hi) / 3)  # E[σ²] for σ ~ U(lo, hi)

    @property
    def sigma(self):
        return sum(self.sigma_range) / 2

    @property
    def spec(self):
        lo, hi = (round(255 * s, 6) for s in self.sigma_range)
        return f"gaussian:{lo:g}" if lo == hi else f"gaussian:{lo:g}-{hi:g}"


@dataclass(frozen=True)
class Poisson(NoiseModel):
    """Poisson (shot) noise ``y = Poisson(λ x) / λ``: ``E[y|x] = x``, ``Var[y|x] = x / λ``.

    Args:
        lam: photon level λ > 0 (larger is less noisy), or ``(lo, hi)`` drawn per image.

    Raises:
        ValueError: λ ≤ 0 or ``lo > hi``. Calling it on negative intensities raises too.
    """

    lam_range: tuple[float, float] = (30.0, 30.0)

    def __init__(self, lam: float | tuple[float, float] = 30.0):
        lo, hi = (lam, lam) if not isinstance(lam, (tuple, list)) else lam
        if not (0 < lo <= hi) or not math.isfinite(hi):
            raise ValueError(f"Poisson λ must satisfy 0 < lo ≤ hi, got {lam}")
        object.__setattr__(self, "lam_range", (float(lo), float(hi)))

    def __call__(self, x, generator=None):
        _check(x)
        if (x < 0).any():
            raise ValueError("Poisson noise needs non-negative intensities")
        lam = _per_image(*self.lam_range, x.shape[0], x, generator)
        rate = (lam * x).to(_gen_device(generator, x))
        return torch.poisson(rate, generator=generator).to(x.device) / lam

    def variance(self, x):
        lo, hi = self.lam_range
        inv = 1 / lo if lo == hi else math.log(hi / lo) / (hi - lo)  # E[1/λ], λ ~ U(lo, hi)
        return x * inv

    @property
    def spec(self):
        lo, hi = self.lam_range
        return f"poisson:{lo:g}" if lo == hi else f"poisson:{lo:g}-{hi:g}"


@dataclass(frozen=True)
class Speckle(NoiseModel):
    """Multiplicative speckle ``y = x + x·n``, n ~ U(-√(3v), √(3v)) (zero mean, variance v).

    Source: the speckle model of the SVID paper (Lin et al. 2022, Sec. 4), v = 0.1 there.

    Args:
        v: variance of the multiplicative factor n (dimensionless), v ≥ 0.

    Raises:
        ValueError: negative v.
    """

    v: float = 0.1

    def __post_init__(self):
        if not (self.v >= 0) or not math.isfinite(self.v):
            raise ValueError(f"speckle variance must be ≥ 0, got {self.v}")

    def __call__(self, x, generator=None):
        _check(x)
        a = math.sqrt(3 * self.v)
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=_gen_device(generator, x))
        return x + x * ((2 * u - 1) * a).to(x.device)

    def variance(self, x):
        return x * x * self.v

    @property
    def spec(self):
        return f"speckle:{self.v:g}"


def _range(text: str) -> tuple[float, float]:
    if "-" in text.strip("-"):
        lo, hi = text.split("-", 1)
        return float(lo), float(hi)
    v = float(text)
    return v, v


def parse_noise(spec: str | NoiseModel) -> NoiseModel:
    """Parse a noise specification string.

    Accepted forms: ``gaussian:SIGMA255`` (σ on the 0–255 scale, e.g. ``gaussian:25``),
    ``gaussian:LO-HI`` (σ drawn per image, 0–255 scale), ``poisson:LAMBDA``,
    ``poisson:LO-HI`` and ``speckle:V``. A :class:`NoiseModel` passes through.

    Raises:
        ValueError: unknown kind or malformed number, with the accepted forms.
    """
    if isinstance(spec, NoiseModel):
        return spec
    forms = "gaussian:SIGMA255, gaussian:LO-HI, poisson:LAMBDA, poisson:LO-HI, speckle:V"
    try:
        kind, _, arg = str(spec).partition(":")
        kind = kind.strip().lower()
        if kind == "gaussian":
            lo, hi = _range(arg)
            return Gaussian((lo / 255, hi / 255))
        if kind == "poisson":
            return Poisson(_range(arg))
        if kind == "speckle":
            return Speckle(float(arg))
    except ValueError as e:
        raise ValueError(f"bad noise spec {spec!r} ({e}); accepted forms: {forms}") from None
    raise ValueError(f"unknown noise spec {spec!r}; accepted forms: {forms}")
