"""Laine et al. (2019), "Improved self-supervised deep image denoising": blind-spot training
with a Gaussian likelihood, and posterior-mean (MAP) denoising that uses the centre pixel.

A blind-spot network (:class:`~denoise_lib.models.BlindSpotUNet`) predicts, for every
pixel, a Gaussian over the clean colour ``x`` from the pixel's surroundings only:
mean ``μ`` (c values) and precision ``Σ_x⁻¹ = AᵀA`` with ``A`` upper-triangular c×c
(c(c+1)/2 values). Because the noise ``n = y − x`` of the centre pixel is independent
of what the network sees, the noisy value is modelled as ``y ~ N(μ, Σ_y)`` with
``Σ_y = Σ_x + σ²I`` (paper §3; COURSE.md §4), and training minimises the negative
log-likelihood of the noisy image itself (paper Eq. 1, with ``Σ_y`` in place of
``(A_yᵀA_y)⁻¹``):

    NLL = ½ (y − μ)ᵀ Σ_y⁻¹ (y − μ) + ½ log det Σ_y + (c/2) log 2π      (per pixel)

The loss is the mean over pixels of this c-variate NLL. At test time the centre pixel
is combined with the prediction by the posterior mean of ``N(x; μ, Σ_x)·N(y; x, σ²I)``
(paper Eq. 2–3, Bromiley 2003):

    x̂ = (Σ_x⁻¹ + σ⁻²I)⁻¹ (Σ_x⁻¹ μ + σ⁻² y) = μ + Σ_x (Σ_x + σ²I)⁻¹ (y − μ).

The right-hand form is Eq. 3 multiplied out; it needs no inverse of ``Σ_x`` and so also
holds for a singular (clamped) ``Σ_x``. All of this algebra runs in float64.

Options (one class, :class:`Laine19`):

* ``mode``: ``"full"`` (the multivariate model above), ``"per-component"`` (independent
  univariate Gaussians per channel: diagonal ``A``; the paper's "Per-comp." ablation) or
  ``"l2"`` (plain MSE between the blind-spot output and the noisy input; the paper's
  "L2" column, which ignores the centre pixel at test time).
* ``sigma_mode``: ``"known"`` (σ of the Gaussian noise model passed as ``noise``),
  ``"global"`` (one learned σ) or ``"per-image"`` (σ estimated from each image by a
  small auxiliary network whose last layer starts at zero). Learned σ is identifiable
  only through ``Σ_x ⪰ 0`` (a smaller σ can always be traded for a larger ``Σ_x``), so,
  as in the authors' public implementation (not stated in the paper), the loss gets a
  term ``−sigma_reg · mean σ`` (``sigma_reg = 0.1``) that pushes σ up to the largest
  value the data allow.
* ``output``: ``"mu"`` (the blind-spot mean) or ``"pme"`` (posterior mean, Eq. 3).
* ``covariance``: which covariance ``A`` parameterises. ``"clean"`` (default; the course's
  choice): ``Σ_x⁻¹ = AᵀA`` and ``Σ_y = Σ_x + σ²I``, so σ is part of the training loss.
  ``"noisy"`` (the paper's §3 as written): ``Σ_y⁻¹ = AᵀA``, the loss is Eq. 1 exactly
  (σ is not used in training), and at test time ``Σ_x = Σ_y − σ²I`` is clamped to be
  positive semi-definite ("the diagonal elements of Σ_p can be clamped to zero"; we clamp
  the eigenvalues, which also makes the diagonal ≥ 0). The authors' public code uses a
  third form, ``Σ_x = AᵀA``; all three describe the same family of Gaussians.

Parameterisation of ``A`` (a choice of this library, not of the paper). The network's
c(c+1)/2 raw outputs ``r`` (upper triangle, row-major, i.e. the order of
``torch.triu_indices(c, c)``: for RGB (0,0), (0,1), (0,2), (1,1), (1,2), (2,2)) give
``A = T / scale`` with ``T_kk = exp(r_kk)`` and ``T_ij = r_ij`` (i < j). Every
upper-triangular matrix with a positive diagonal is reached, and these give every
positive-definite ``AᵀA`` (Cholesky factorisation), so the model family is the paper's.
The exponential keeps ``A`` invertible (the paper instead clamps ``|A|`` at 10⁻⁸ before the
logarithm), and ``scale`` (0.1 by default, ≈ σ = 25/255) starts training at
``Σ ≈ scale²·I`` with targets of order one, which Adam reaches in hundreds of steps
rather than the paper's hundreds of thousands.

Network output channel layout: ``[0, c)`` = ``μ``; ``[c, c + c(c+1)/2)`` = ``r`` (full);
``[c, 2c)`` = log-diagonal of ``A`` (per-component); nothing more for ``"l2"``
(see :func:`n_outputs`).

Book, Part 3, "Blind-spot networks" (book/03_blind_spot_theory.md).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import Batch, Method

__all__ = ["Laine19", "n_outputs", "triangular_factor", "covariances", "gaussian_nll",
           "clamp_psd", "posterior_mean", "MODES", "SIGMA_MODES", "OUTPUTS", "COVARIANCES"]

MODES = ("full", "per-component", "l2")
SIGMA_MODES = ("known", "global", "per-image")
OUTPUTS = ("mu", "pme")
COVARIANCES = ("clean", "noisy")

#: learned σ = SIGMA_FLOOR + softplus(z + z0), z = 0 at initialisation (σ = sigma_init).
SIGMA_FLOOR = 1e-3
LOG_2PI = math.log(2 * math.pi)


def n_outputs(channels: int, mode: str) -> int:
    """Network output channels for ``channels`` image channels: c + c(c+1)/2 (full), 2c (per-component), c (l2).

    Raises:
        ValueError: unknown mode or channels < 1.
    """
    if channels < 1:
        raise ValueError(f"channels must be ≥ 1, got {channels}")
    if mode == "full":
        return channels + channels * (channels + 1) // 2
    if mode == "per-component":
        return 2 * channels
    if mode == "l2":
        return channels
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def triangular_factor(raw: torch.Tensor, channels: int, scale: float = 0.1) -> torch.Tensor:
    """The upper-triangular ``A`` from the network's raw outputs (module docstring).

    Args:
        raw: ``(..., c(c+1)/2)`` raw values, upper triangle in row-major order.
        channels: c.
        scale: ``A = T / scale``.

    Returns:
        ``(..., c, c)`` upper-triangular ``A`` with ``A_kk = exp(r_kk)/scale``,
        ``A_ij = r_ij/scale`` (i < j), zeros below the diagonal; dtype of ``raw``.

    Raises:
        ValueError: the last axis of ``raw`` is not c(c+1)/2.
    """
    c = channels
    if raw.shape[-1] != c * (c + 1) // 2:
        raise ValueError(f"expected {c * (c + 1) // 2} raw entries for c = {c}, got {raw.shape[-1]}")
    rows, cols = torch.triu_indices(c, c, device=raw.device)
    diag = rows == cols
    vals = torch.where(diag, raw.exp(), raw) / scale
    A = raw.new_zeros((*raw.shape[:-1], c, c))
    A[..., rows, cols] = vals
    return A


def clamp_psd(S: torch.Tensor) -> torch.Tensor:
    """Nearest positive semi-definite matrix: negative eigenvalues of symmetric ``S`` set to 0.

    Laine et al. (2019) §3: ``Σ_p = Σ_y − σ²I`` may have negative variances from
    approximation errors; the paper clamps the diagonal to zero, this clamps the
    eigenvalues (which makes the diagonal ≥ 0 and the matrix a valid covariance).

    Args:
        S: ``(..., c, c)`` symmetric float tensor (float64 recommended).

    Returns:
        ``(..., c, c)`` symmetric PSD tensor; ``S`` itself where it is already PSD (up to rounding).
    """
    if S.shape[-1] == 1:
        return S.clamp_min(0)
    S = 0.5 * (S + S.transpose(-1, -2))
    evals, evecs = torch.linalg.eigh(S)
    return (evecs * evals.clamp_min(0).unsqueeze(-2)) @ evecs.transpose(-1, -2)


def covariances(A: torch.Tensor, sigma: torch.Tensor, covariance: str = "clean",
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ_x, Σ_y)`` per pixel from the factor ``A`` and the noise σ.

    Args:
        A: ``(..., c, c)`` invertible upper-triangular factor (float64).
        sigma: σ in [0, 1] units, broadcastable to ``A.shape[:-2]`` (float64).
        covariance: ``"clean"``: ``Σ_x = (AᵀA)⁻¹``, ``Σ_y = Σ_x + σ²I`` (COURSE.md §4);
            ``"noisy"``: ``Σ_y = (AᵀA)⁻¹`` and ``Σ_x = clamp_psd(Σ_y − σ²I)`` (paper §3).

    Returns:
        ``Σ_x`` (PSD) and ``Σ_y`` (positive definite), each ``(..., c, c)``.
    """
    c = A.shape[-1]
    eye = torch.eye(c, dtype=A.dtype, device=A.device)
    inv_A = torch.linalg.solve_triangular(A, eye.expand_as(A), upper=True)   # A⁻¹
    S = inv_A @ inv_A.transpose(-1, -2)                                       # (AᵀA)⁻¹ = A⁻¹A⁻ᵀ
    s2 = (sigma ** 2)[..., None, None] * eye
    if covariance == "clean":
        return S, S + s2
    if covariance == "noisy":
        return clamp_psd(S - s2), S
    raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")


def gaussian_nll(y: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Negative log-density of ``N(mu, cov)`` at ``y``, with the log-determinant and the constant.

    ``½ (y − μ)ᵀ Σ⁻¹ (y − μ) + ½ log det Σ + (c/2) log 2π`` (Laine et al. 2019, Eq. 1,
    written with the covariance instead of its factor), via a Cholesky factorisation.

    Args:
        y, mu: ``(..., c)`` float64.
        cov: ``(..., c, c)`` symmetric positive definite, float64.

    Returns:
        ``(...)`` NLL per vector (nats).

    Raises:
        torch.linalg.LinAlgError: ``cov`` is not positive definite.
    """
    L = torch.linalg.cholesky(cov)
    z = torch.linalg.solve_triangular(L, (y - mu).unsqueeze(-1), upper=False).squeeze(-1)
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (z * z).sum(-1) + 0.5 * logdet + 0.5 * y.shape[-1] * LOG_2PI


def posterior_mean(y: torch.Tensor, mu: torch.Tensor, sigma_x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Posterior mean (= MAP) of ``x`` under the prior ``N(μ, Σ_x)`` and the likelihood ``N(y; x, σ²I)``.

    Laine et al. (2019), Eq. 3: ``x̂ = (Σ_x⁻¹ + σ⁻²I)⁻¹ (Σ_x⁻¹μ + σ⁻²y)``, evaluated as
    ``μ + Σ_x (Σ_x + σ²I)⁻¹ (y − μ)``, which is the same for invertible ``Σ_x`` and stays
    defined for a singular (clamped) one (then x̂ = μ along the null directions).

    Args:
        y, mu: ``(..., c)``; sigma_x: ``(..., c, c)`` PSD; sigma: σ > 0 broadcastable to
            ``y.shape[:-1]``. All float64.

    Returns:
        ``(..., c)`` posterior mean. σ → ∞ gives μ; Σ_x → ∞ (or σ → 0) gives y.
    """
    c = y.shape[-1]
    eye = torch.eye(c, dtype=y.dtype, device=y.device)
    s2 = (sigma ** 2)[..., None, None] * eye
    w = torch.linalg.solve(sigma_x + s2, (y - mu).unsqueeze(-1))
    return mu + (sigma_x @ w).squeeze(-1)


def _as_sigma(noise) -> float:
    """σ of a fixed-level Gaussian noise model (or spec string); ValueError otherwise."""
    from ..noise import Gaussian, parse_noise

    hint = ("pass the noise model, e.g. noise=Gaussian(25/255) or methods.build(..., noise='gaussian:25'), "
            "or use sigma_mode='global' / 'per-image' to learn σ")
    if noise is None:
        raise ValueError(f"sigma_mode='known' needs the noise level: {hint}")
    if isinstance(noise, (int, float)):
        raise ValueError(f"noise must be a NoiseModel or a spec string, got the number {noise!r}; {hint}")
    model = parse_noise(noise)
    if not isinstance(model, Gaussian) or model.sigma is None:
        raise ValueError(f"sigma_mode='known' needs Gaussian noise with a known σ, got {model.spec!r}; {hint}")
    lo, hi = model.sigma_range
    if lo != hi:
        raise ValueError(f"noise {model.spec!r} draws σ per image, so no single σ is known; "
                         "use sigma_mode='per-image'")
    if not lo > 0:
        raise ValueError(f"the known σ must be > 0, got {lo}")
    return float(lo)


class Laine19(Method):
    """Blind-spot denoiser with a Gaussian likelihood (Laine et al. 2019); see the module docstring.

    Args:
        net: a blind-spot network mapping ``(N, c, H, W)`` to ``(N, n_outputs(c, mode), H, W)``,
            normally :class:`~denoise_lib.models.BlindSpotUNet` (see :meth:`default_net`).
            Any network works, but only a blind-spot one makes the loss meaningful.
        mode: ``"full"``, ``"per-component"`` or ``"l2"``.
        sigma_mode: ``"known"``, ``"global"`` or ``"per-image"`` (ignored for ``"l2"``).
        output: ``"mu"`` or ``"pme"`` — what :meth:`predict` (and so :meth:`denoise`) returns.
        noise: the noise model (:class:`~denoise_lib.noise.Gaussian` with one σ, or a spec
            string such as ``"gaussian:25"``); required for ``sigma_mode="known"`` and
            otherwise ignored. :func:`denoise_lib.methods.build` passes it.
        covariance: ``"clean"`` (Σ_x⁻¹ = AᵀA, default) or ``"noisy"`` (Σ_y⁻¹ = AᵀA, paper §3).
        scale: ``A = T / scale`` (module docstring); 0.1 by default.
        sigma_reg: weight of the ``−mean σ`` term for learned σ (0.1, authors' code).
        sigma_init: learned σ at initialisation, in [0, 1] units (0.02).
        features, depth: size of :meth:`default_net`; accepted here so that
            ``build(name, channels, features=…, depth=…)`` works, otherwise unused.

    σ at test time (:meth:`sigma`, used by :meth:`predict` for ``"pme"``): ``"known"``
    uses the given σ; ``"global"`` the learned scalar; ``"per-image"`` runs the σ
    network on the image being denoised (one σ per image of the batch).

    ``requires = "single"``: training sees one noisy observation per image.
    ``name`` is the registry name for the registered settings (``laine19-mu``,
    ``laine19-pme``, ``laine19-percomp``, ``laine19-l2``) and a descriptive one otherwise.

    Raises:
        ValueError: unknown option; ``output="pme"`` with ``mode="l2"`` (the L2 network has
            no variance, so there is nothing to weigh the centre pixel against);
            ``sigma_mode="known"`` without a fixed-σ Gaussian ``noise``; a learned σ with
            ``covariance="noisy"`` (σ does not enter that loss, so it cannot be learned);
            a network whose ``out_channels`` does not match ``mode``.
    """

    name = "laine19"
    requires = "single"

    def __init__(self, net: nn.Module, *, mode: str = "full", sigma_mode: str = "known",
                 output: str = "pme", noise=None, covariance: str = "clean", scale: float = 0.1,
                 sigma_reg: float = 0.1, sigma_init: float = 0.02, features: int | None = None,
                 depth: int | None = None):
        super().__init__(net)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if sigma_mode not in SIGMA_MODES:
            raise ValueError(f"sigma_mode must be one of {SIGMA_MODES}, got {sigma_mode!r}")
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        self._check_output(mode, output)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if not sigma_init > SIGMA_FLOOR:
            raise ValueError(f"sigma_init must exceed {SIGMA_FLOOR}, got {sigma_init}")
        c = self.channels
        if c is None:
            raise ValueError("Laine19 needs a network with an `in_channels` attribute")
        want = n_outputs(c, mode)
        got = getattr(net, "out_channels", want)
        if got != want:
            raise ValueError(f"mode {mode!r} on {c}-channel images needs a network with {want} output "
                             f"channels, got {got} (use Laine19.default_net)")
        if mode == "l2":
            sigma_mode = "known"   # σ plays no role in the L2 loss or its output
        elif sigma_mode != "known" and covariance == "noisy":
            raise ValueError("a learned σ needs covariance='clean': with covariance='noisy' σ does not "
                             "enter the training loss (paper Eq. 1), so it cannot be learned")
        self.mode, self.sigma_mode, self.output, self.covariance = mode, sigma_mode, output, covariance
        self.scale, self.sigma_reg = float(scale), float(sigma_reg)
        self.known_sigma = _as_sigma(noise) if (mode != "l2" and sigma_mode == "known") else None
        self._z0 = math.log(math.expm1(sigma_init - SIGMA_FLOOR))   # softplus⁻¹
        if sigma_mode == "global" and mode != "l2":
            self.sigma_param = nn.Parameter(torch.zeros(()))
        if sigma_mode == "per-image" and mode != "l2":
            from ..models import UNet

            self.sigma_net = UNet(in_channels=c, out_channels=1, features=16, depth=3)
            nn.init.zeros_(self.sigma_net.head.weight)      # COURSE.md §4: zero-initialised last layer
            nn.init.zeros_(self.sigma_net.head.bias)
        self.name = self._compose_name()

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _check_output(mode: str, output: str) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if output == "pme" and mode == "l2":
            raise ValueError("output='pme' is impossible with mode='l2': the L2 network predicts no "
                             "variance, so the posterior mean (Eq. 3) is undefined; use output='mu'")

    @staticmethod
    def default_net(channels: int, *, mode: str = "full", features: int | None = None,
                    depth: int | None = None, **_ignored) -> nn.Module:
        """A :class:`~denoise_lib.models.BlindSpotUNet` with :func:`n_outputs` output channels.

        ``features`` (48) and ``depth`` (5) default to the paper's network (§4).
        """
        from ..models import BlindSpotUNet

        return BlindSpotUNet(in_channels=channels, out_channels=n_outputs(channels, mode),
                             features=48 if features is None else features, depth=5 if depth is None else depth)

    def _compose_name(self) -> str:
        if self.mode == "l2":
            return "laine19-l2"
        name = {"full": "laine19-", "per-component": "laine19-percomp"}[self.mode]
        name += {("full", "mu"): "mu", ("full", "pme"): "pme", ("per-component", "pme"): "",
                 ("per-component", "mu"): "-mu"}[(self.mode, self.output)]
        if self.sigma_mode != "known":
            name += f"-sigma-{self.sigma_mode}"
        if self.covariance != "clean":
            name += "-noisycov"
        return name

    def extra_repr(self) -> str:
        return (f"requires={self.requires!r}, mode={self.mode!r}, sigma_mode={self.sigma_mode!r}, "
                f"output={self.output!r}, covariance={self.covariance!r}, known_sigma={self.known_sigma}")

    # ------------------------------------------------------------------ the model
    def sigma(self, y: torch.Tensor) -> torch.Tensor:
        """σ used for the batch ``y``: shape ``(N,)``, float64, [0, 1] units.

        Known: the constructor's σ. Global: ``1e-3 + softplus(z + z0)`` of the learned
        scalar z. Per-image: the same map of the pixel mean of the σ network's output on
        ``y`` (differentiable; zero-initialised last layer, so every image starts at
        ``sigma_init``). Raises ValueError for ``mode="l2"`` (no σ is used).
        """
        n = y.shape[0]
        if self.mode == "l2":
            raise ValueError("mode='l2' uses no σ")
        if self.sigma_mode == "known":
            return torch.full((n,), self.known_sigma, dtype=torch.float64, device=y.device)
        if self.sigma_mode == "global":
            z = self.sigma_param.to(torch.float64).expand(n)
        else:
            z = self.sigma_net(y).to(torch.float64).mean(dim=(1, 2, 3))
        return SIGMA_FLOOR + F.softplus(z + self._z0)

    def distribution(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The predicted Gaussians for a noisy batch ``y`` (N, c, H, W), all float64.

        Returns a dict with ``mu`` (N, H, W, c) and, unless ``mode="l2"``, ``sigma`` (N,),
        ``sigma_x`` and ``sigma_y``: (N, H, W, c, c) for ``"full"``, (N, H, W, c) variances for
        ``"per-component"``. ``sigma_x`` is PSD (clamped for ``covariance="noisy"``).
        """
        c = self.channels
        if y.ndim != 4 or y.shape[1] != c:
            raise ValueError(f"{self.name} expects (N, {c}, H, W), got {tuple(y.shape)}")
        out = self.net(y).to(torch.float64).permute(0, 2, 3, 1)      # (N, H, W, n_out)
        res = {"mu": out[..., :c]}
        if self.mode == "l2":
            return res
        sigma = self.sigma(y)
        res["sigma"] = sigma
        s2 = (sigma ** 2)[:, None, None, None]
        if self.mode == "full":
            A = triangular_factor(out[..., c:], c, self.scale)
            res["sigma_x"], res["sigma_y"] = covariances(A, sigma[:, None, None], self.covariance)
        else:
            var = (self.scale * torch.exp(-out[..., c:2 * c])) ** 2   # 1 / A_kk²
            if self.covariance == "clean":
                res["sigma_x"], res["sigma_y"] = var, var + s2
            else:
                res["sigma_x"], res["sigma_y"] = (var - s2).clamp_min(0), var
        return res

    def loss(self, batch: Batch):
        """Mean per-pixel NLL of the noisy batch (float64), or the MSE for ``"l2"``.

        Logs ``nll`` (or ``mse``), ``mse_mu`` = mean (μ − y)² and ``sigma`` (mean σ).
        """
        y = batch.noisy
        d = self.distribution(y)
        y64 = y.to(torch.float64).permute(0, 2, 3, 1)
        mse_mu = torch.mean((d["mu"] - y64) ** 2)
        if self.mode == "l2":
            return mse_mu, {"mse": mse_mu.detach()}
        if self.mode == "full":
            nll = gaussian_nll(y64, d["mu"], d["sigma_y"]).mean()
        else:
            v = d["sigma_y"]
            nll = (0.5 * (y64 - d["mu"]) ** 2 / v + 0.5 * torch.log(v) + 0.5 * LOG_2PI).sum(-1).mean()
        loss = nll
        if self.sigma_mode != "known":
            loss = loss - self.sigma_reg * d["sigma"].mean()
        return loss, {"nll": nll.detach(), "mse_mu": mse_mu.detach(), "sigma": d["sigma"].mean().detach()}

    def predict(self, y: torch.Tensor) -> torch.Tensor:
        """``μ`` (output "mu") or the posterior mean (output "pme", Eq. 3), float32 (N, c, H, W)."""
        return self.predict_all(y)[self.output]

    def predict_all(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both estimates for a noisy batch: ``{"mu": …, "pme": …}`` (no "pme" for l2), float32 NCHW."""
        d = self.distribution(y)
        res = {"mu": d["mu"]}
        if self.mode != "l2":
            y64 = y.to(torch.float64).permute(0, 2, 3, 1)
            s = d["sigma"][:, None, None]
            if self.mode == "full":
                res["pme"] = posterior_mean(y64, d["mu"], d["sigma_x"], s)
            else:                                   # univariate Eq. 3 per channel
                vx, s2 = d["sigma_x"], (s ** 2)[..., None]
                res["pme"] = (vx * y64 + s2 * d["mu"]) / (vx + s2)
        return {k: v.permute(0, 3, 1, 2).to(torch.float32).contiguous() for k, v in res.items()}

    @torch.no_grad()
    def denoise(self, y, *, batch_size: int = 1, output: str | None = None) -> torch.Tensor:
        """:meth:`Method.denoise`, optionally with another ``output`` ("mu" or "pme") for this call only."""
        if output is None:
            return super().denoise(y, batch_size=batch_size)
        self._check_output(self.mode, output)
        saved, self.output = self.output, output
        try:
            return super().denoise(y, batch_size=batch_size)
        finally:
            self.output = saved
