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
  drawn uniformly per image from a range. Mean counts ``λ·x > 10⁶`` are drawn from the
  normal approximation ``N(x, x/λ)`` (see :class:`Poisson`).
* Speckle (SVID paper, Lin et al. 2022, Sec. 4): ``y = x + x·n`` with ``n``
  uniform, zero mean and variance ``v``, i.e. ``n ~ U(-√(3v), √(3v))``.

A spec string such as ``"gaussian:25"`` (σ on the 0–255 scale), ``"gaussian:5-50"``,
``"poisson:30"``, ``"poisson:5-50"`` or ``"speckle:0.1"`` is parsed by :func:`parse_noise`;
every model's :attr:`~NoiseModel.spec` parses back to the same parameters.

Parameters are checked when a model is built (``ValueError`` naming the parameter and its
allowed range): Gaussian σ must lie in [0, 1] — a σ above 1 is almost certainly on the
0–255 scale and is refused with a hint to divide by 255 —, Poisson λ in
[1e-30, ∞), speckle v in [0, 100].
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

import torch

__all__ = ["NoiseModel", "Gaussian", "Poisson", "Speckle", "PoissonGaussian", "parse_noise", "POISSON_NORMAL_ABOVE",
           "POISSON_MIN_LAMBDA", "SPECKLE_MAX_V"]


#: Mean photon count above which :class:`Poisson` draws from the normal approximation.
POISSON_NORMAL_ABOVE = 1e6
#: Smallest accepted Poisson λ: it keeps λ inside float32 and any count k < 10⁸ divided by λ finite.
POISSON_MIN_LAMBDA = 1e-30
#: Largest accepted speckle variance (noise std 10× the signal; SVID uses 0.1). Far larger
#: values are a mistake, and overflow float32 beyond ≈ 1e76.
SPECKLE_MAX_V = 100.0


def _uniform(lo: float, hi: float, n: int, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor | None:
    """The uniform draws behind one level per image, (N, 1, 1, 1) on x's device; None if lo == hi."""
    if lo == hi:
        return None
    return torch.rand((n, 1, 1, 1), generator=g, dtype=x.dtype, device=_gen_device(g, x)).to(x.device)


def _levels(lo: float, hi: float, u: torch.Tensor | None, n: int, x: torch.Tensor,
            dtype: torch.dtype | None = None) -> torch.Tensor:
    """Per-image levels ``lo + (hi - lo)·u`` in ``dtype`` (default x.dtype), shaped (N, 1, 1, 1).

    Levels beyond the dtype's range become inf (computed in float64, then cast).
    """
    dtype = dtype or x.dtype
    work = dtype if hi <= torch.finfo(dtype).max else torch.float64
    lv = torch.full((n, 1, 1, 1), lo, dtype=work, device=x.device) if u is None else lo + (hi - lo) * u.to(work)
    return lv.to(dtype)


def _per_image(lo: float, hi: float, n: int, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """Draw one level per image uniformly from [lo, hi], shaped (N, 1, 1, 1)."""
    return _levels(lo, hi, _uniform(lo, hi, n, x, g), n, x)


def _gen_device(g: torch.Generator | None, x: torch.Tensor) -> torch.device:
    return g.device if g is not None else x.device


def _check(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"noise models take a float NCHW tensor, got {got}; "
                        "convert with denoise_lib.image.as_image")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the clean image x contains NaN or infinite values")


def _real(name: str, v) -> float:
    """``v`` as a Python float; ValueError naming ``name`` for bools, strings and non-numbers."""
    if isinstance(v, (bool, str, bytes)) or v is None:
        raise ValueError(f"{name} must be a real number, got {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {v!r}") from None


def _level_range(name: str, v) -> tuple[float, float]:
    """A level or a ``(lo, hi)`` pair as two floats (not yet range-checked)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} range must be a (lo, hi) pair, got {v!r}")
        return _real(name, v[0]), _real(name, v[1])
    f = _real(name, v)
    return f, f


def _sigma_scale_error(what: str, value: float) -> ValueError:
    """The error for a σ above 1, which is almost certainly on the 0–255 scale."""
    return ValueError(f"{what} = {value:g} is above 1, but σ is in [0, 1] units, like the images: "
                      f"σ = {value:g} on the 0–255 scale is {value:g}/255 = {value / 255:.4g} "
                      f"(e.g. σ = 25 → 25/255)")


def _from255(text: str) -> float:
    """σ in [0, 1] units from its decimal text on the 0–255 scale, rounded once (exact decimal / 255)."""
    try:
        return float(Fraction(text) / 255)
    except OverflowError:
        return math.inf


def _plain(t: str) -> str:
    """Positional text for magnitudes in [1e-4, 1e6) (``5e+1`` → ``50``), else ``2.55e-6`` style."""
    d = Decimal(t)
    if d == 0 or Decimal("1e-4") <= abs(d) < Decimal("1e6"):
        return format(d, "f")
    return format(d, f".{len(d.normalize().as_tuple().digits) - 1}e")


def _shortest(v: float, on255: bool = False) -> str:
    """The shortest decimal text that parses back to exactly ``v``.

    With ``on255`` the text is ``255·v`` and parses back through :func:`_from255`. The digits
    are those of the exact value (``Decimal(v)·255``), so 17 significant digits always suffice.
    """
    with localcontext() as ctx:
        ctx.prec = 60
        exact = Decimal(v) * 255 if on255 else Decimal(v)
        back = _from255 if on255 else float
        for p in range(1, 40):
            t = _plain(format(exact, f".{p}g"))
            if back(t) == v:
                return t
    raise AssertionError(f"no decimal text parses back to {v!r}")  # 17 digits always do


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
            and Neighbor2Neighbor §4.1). σ = 0 adds nothing.

    Raises:
        ValueError: σ not a real number, NaN, negative, ``lo > hi``, or above 1 (the
            message points out the 0–255 scale: use 25/255, not 25).
    """

    sigma_range: tuple[float, float] = (25 / 255, 25 / 255)

    def __init__(self, sigma: float | tuple[float, float] = 25 / 255):
        lo, hi = _level_range("Gaussian σ", sigma)
        if not (0 <= lo <= hi) or not math.isfinite(hi):
            raise ValueError(f"Gaussian σ must satisfy 0 ≤ lo ≤ hi ≤ 1, got {sigma!r}")
        if hi > 1:
            raise _sigma_scale_error("Gaussian σ", hi)
        object.__setattr__(self, "sigma_range", (lo + 0.0, hi + 0.0))  # + 0.0: no -0.0

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
        """``"gaussian:S"`` or ``"gaussian:LO-HI"``, σ on the 0–255 scale, shortest exact digits."""
        lo, hi = (_shortest(s, on255=True) for s in self.sigma_range)
        return f"gaussian:{lo}" if self.sigma_range[0] == self.sigma_range[1] else f"gaussian:{lo}-{hi}"


@dataclass(frozen=True)
class Poisson(NoiseModel):
    """Poisson (shot) noise ``y = Poisson(λ x) / λ``: ``E[y|x] = x``, ``Var[y|x] = x / λ``.

    Where the mean count ``λ·x`` exceeds :data:`POISSON_NORMAL_ABOVE` (10⁶) the draw uses the
    normal approximation to the Poisson law, ``y = x + √(x/λ)·n``, n ~ N(0, 1), clipped at 0
    (central limit theorem; the Poisson skewness there is μ^(-1/2) ≤ 10⁻³ and the noise std
    √(x/λ) ≤ 10⁻³·x lies below the 8-bit step). Below it the counts are exact integers
    (exactly representable in float32), so huge λ gives y ≈ x instead of integer overflow.

    Args:
        lam: photon level λ (larger is less noisy), ``1e-30 ≤ λ < ∞``
            (:data:`POISSON_MIN_LAMBDA`), or ``(lo, hi)`` drawn uniformly per image.

    Raises:
        ValueError: λ not a real number, NaN, infinite, below 1e-30 (e.g. 0) or ``lo > hi``.
            Calling it on negative intensities raises too.
    """

    lam_range: tuple[float, float] = (30.0, 30.0)

    def __init__(self, lam: float | tuple[float, float] = 30.0):
        lo, hi = _level_range("Poisson λ", lam)
        if not (POISSON_MIN_LAMBDA <= lo <= hi) or not math.isfinite(hi):
            raise ValueError(f"Poisson λ must satisfy {POISSON_MIN_LAMBDA:g} ≤ lo ≤ hi < ∞, got {lam!r}")
        object.__setattr__(self, "lam_range", (lo, hi))

    def __call__(self, x, generator=None):
        _check(x)
        if (x < 0).any():
            raise ValueError(f"Poisson noise needs non-negative intensities, got a minimum of {float(x.min()):.4g}")
        if x.dtype in (torch.float16, torch.bfloat16):  # λ and k/λ need float32's range
            return self(x.float(), generator).to(x.dtype)
        lo, hi = self.lam_range
        n_img, dev = x.shape[0], _gen_device(generator, x)
        u = _uniform(lo, hi, n_img, x, generator)
        lam = _levels(lo, hi, u, n_img, x)
        rate = (lam * x).to(dev)
        big = ~(rate <= POISSON_NORMAL_ABOVE)  # also λ·x = inf or NaN when λ overflows x's dtype
        if not bool(big.any()):
            return torch.poisson(rate, generator=generator).to(x.device) / lam
        exact = torch.poisson(torch.where(big, torch.zeros_like(rate), rate), generator=generator).to(x.device)
        exact = exact / lam
        x64, lam64 = x.double(), _levels(lo, hi, u, n_img, x, torch.float64)
        n = torch.randn(x.shape, generator=generator, dtype=torch.float64, device=dev).to(x.device)
        approx = (x64 + torch.sqrt(x64 / lam64) * n).clamp_min(0).to(x.dtype)
        return torch.where(big.to(x.device), approx, exact)

    def variance(self, x):
        lo, hi = self.lam_range
        inv = 1 / lo if lo == hi else math.log(hi / lo) / (hi - lo)  # E[1/λ], λ ~ U(lo, hi)
        return x * inv

    @property
    def spec(self):
        """``"poisson:L"`` or ``"poisson:LO-HI"``, shortest digits that parse back exactly."""
        lo, hi = self.lam_range
        return f"poisson:{_shortest(lo)}" if lo == hi else f"poisson:{_shortest(lo)}-{_shortest(hi)}"


@dataclass(frozen=True)
class Speckle(NoiseModel):
    """Multiplicative speckle ``y = x + x·n``, n ~ U(-√(3v), √(3v)) (zero mean, variance v).

    Source: the speckle model of the SVID paper (Lin et al. 2022, Sec. 4), v = 0.1 there.

    Args:
        v: variance of the multiplicative factor n (dimensionless), 0 ≤ v ≤ 100
            (:data:`SPECKLE_MAX_V`: noise std up to 10× the signal).

    Raises:
        ValueError: v not a real number, NaN, negative or above 100.
    """

    v: float = 0.1

    def __post_init__(self):
        v = _real("speckle variance v", self.v)
        if not (0 <= v <= SPECKLE_MAX_V):
            raise ValueError(f"speckle variance v must satisfy 0 ≤ v ≤ {SPECKLE_MAX_V:g}, got {self.v!r}")
        object.__setattr__(self, "v", v + 0.0)

    def __call__(self, x, generator=None):
        _check(x)
        a = math.sqrt(3 * self.v)
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=_gen_device(generator, x))
        return x + x * ((2 * u - 1) * a).to(x.device)

    def variance(self, x):
        return x * x * self.v

    @property
    def spec(self):
        """``"speckle:V"``, shortest digits that parse back exactly."""
        return f"speckle:{_shortest(self.v)}"


@dataclass(frozen=True)
class PoissonGaussian(NoiseModel):
    """Camera-like noise: shot noise plus read-out noise, ``y = Poisson(λ x)/λ + σ n``, n ~ N(0, 1).

    ``E[y|x] = x`` and ``Var[y|x] = x/λ + σ²``: the Poisson–Gaussian model of raw sensor
    data (Foi et al. 2008, "Practical Poissonian-Gaussian noise modeling and fitting for
    single-image raw-data", Eq. 1, with a = 1/λ and b = σ²).

    Args:
        lam: photon level λ of the shot noise (as :class:`Poisson`).
        sigma: standard deviation of the read-out noise in [0, 1] units (as :class:`Gaussian`).

    Raises:
        ValueError: as :class:`Poisson` for λ and :class:`Gaussian` for σ.
    """

    lam: float = 60.0
    sigma: float = 5 / 255

    def __post_init__(self):
        shot, read = Poisson(self.lam), Gaussian(self.sigma)
        object.__setattr__(self, "lam", shot.lam_range[0])
        object.__setattr__(self, "sigma", read.sigma_range[0])

    def __call__(self, x, generator=None):
        shot = Poisson(self.lam)(x, generator)
        return Gaussian(self.sigma)(shot, generator)

    def variance(self, x):
        return x / self.lam + self.sigma ** 2

    @property
    def spec(self):
        """``"poisson-gaussian:L,S255"`` (σ on the 0–255 scale), shortest digits that parse back exactly."""
        return f"poisson-gaussian:{_shortest(self.lam)},{_shortest(self.sigma, on255=True)}"


_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?"  # float exponents have ≤ 3 digits
_RANGE = re.compile(rf"\s*({_NUM})\s*(?:-\s*({_NUM})\s*)?")


def _number(text: str) -> float:
    """One decimal number (exponent notation allowed)."""
    if re.fullmatch(rf"\s*{_NUM}\s*", text) is None:
        raise ValueError(f"malformed number {text!r}")
    return float(text)


def _range(text: str) -> tuple[str, str]:
    """``"V"`` or ``"LO-HI"`` (decimal or exponent notation, e.g. ``2.55e-06-5``) as two number texts."""
    m = _RANGE.fullmatch(text)
    if m is None:
        raise ValueError(f"malformed number or range {text!r}")
    return m.group(1), m.group(2) if m.group(2) is not None else m.group(1)


def parse_noise(spec: str | NoiseModel) -> NoiseModel:
    """Parse a noise specification string.

    Accepted forms: ``gaussian:SIGMA255`` (σ on the 0–255 scale, e.g. ``gaussian:25``,
    at most 255), ``gaussian:LO-HI`` (σ drawn per image, 0–255 scale), ``poisson:LAMBDA``,
    ``poisson:LO-HI``, ``speckle:V`` and ``poisson-gaussian:LAMBDA,SIGMA255``. Numbers may
    use exponent notation (``2.55e-06``).
    A :class:`NoiseModel` passes through; ``parse_noise(m.spec)`` rebuilds ``m``.

    Raises:
        ValueError: unknown kind, malformed number, or a parameter out of its model's
            range, with the accepted forms.
    """
    if isinstance(spec, NoiseModel):
        return spec
    forms = "gaussian:SIGMA255, gaussian:LO-HI, poisson:LAMBDA, poisson:LO-HI, speckle:V, " \
            "poisson-gaussian:LAMBDA,SIGMA255"
    try:
        kind, _, arg = str(spec).partition(":")
        kind = kind.strip().lower()
        if kind == "gaussian":
            lo, hi = (_from255(t) for t in _range(arg))
            if hi > 1:
                raise ValueError(f"gaussian:SIGMA255 takes σ on the 0–255 scale, at most 255, got {255 * hi:g}")
            return Gaussian((lo, hi))
        if kind == "poisson":
            return Poisson(tuple(float(t) for t in _range(arg)))
        if kind == "speckle":
            return Speckle(_number(arg))
        if kind == "poisson-gaussian":
            lam, sep, s255 = arg.partition(",")
            if not sep:
                raise ValueError("poisson-gaussian needs LAMBDA,SIGMA255")
            return PoissonGaussian(_number(lam), _from255(s255))
    except ValueError as e:
        raise ValueError(f"bad noise spec {spec!r} ({e}); accepted forms: {forms}") from None
    raise ValueError(f"unknown noise spec {spec!r}; accepted forms: {forms}")
