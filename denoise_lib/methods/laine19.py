"""Laine et al. (2019), "Improved self-supervised deep image denoising": blind-spot training
with a Gaussian likelihood, and posterior-mean (MAP) denoising that uses the centre pixel.

Book: Part 3, book/03_blind_spot_theory.md ("the page" below); equation labels are the
page's, "Eq. (n)" the short paper's. Notation: ``y`` noisy, ``x`` clean, σ in [0, 1] units.

A blind-spot network (:class:`~denoise_lib.models.BlindSpotUNet`) predicts for every
pixel ``p``, from its context ``Ω_p`` only, a Gaussian prior ``N(μ_x, Σ_x)`` of the clean
colour. Because the noise at ``p`` is independent of the context, the noisy colour given
the context is ``N(μ_x, Σ_y)`` with ``Σ_y = Σ_x + σ²I`` (page, {eq}`bs-cov-add`), and
training minimises the negative log-likelihood of the noisy image itself
(page {eq}`bs-gauss-nll`, {eq}`bs-nll-x`; the paper's Eq. 1 and §3):

    ℓ_p = ½ (y_p − μ_x)ᵀ Σ_y⁻¹ (y_p − μ_x) + ½ log det Σ_y + (C/2) log 2π

The loss is the mean of ``ℓ_p`` over all pixels of the batch. The constant
``(C/2) log 2π`` does not change the minimiser; it is kept so that the logged value is
the true NLL in nats (``torch.distributions`` gives the same number). At test time the
centre pixel comes back through the posterior mean of ``N(x; μ_x, Σ_x)·N(y; x, σ²I)``
(paper Eq. 2–3; page {eq}`bs-posterior`), evaluated in the gain form that needs no
inverse of ``Σ_x`` (page {eq}`bs-gain`, {prf:ref}`alg-bs-bayes` step 5):

    x̂_p = (Σ_x⁻¹ + σ⁻²I)⁻¹ (Σ_x⁻¹ μ_x + σ⁻² y_p) = y_p − σ² Σ_y⁻¹ (y_p − μ_x).

All of this algebra runs in float64 (page, "Numerical care"); estimates are returned in
float32.

Options (one class, :class:`Laine19`):

* ``mode``: ``"full"`` (the multivariate model), ``"per-component"`` (independent
  univariate Gaussians per channel: diagonal ``A``; the paper's "Per-comp." ablation,
  page {eq}`bs-nll-percomp`, {eq}`bs-percomp`) or ``"l2"`` (MSE between the blind-spot
  output and the noisy input; the paper's "L2" column, page {prf:ref}`prop-bs-l2`; it
  cannot use the centre pixel at test time).
* ``covariance``: what the upper-triangular ``A`` parameterises.
  ``"clean"`` (default) is the page's parameterisation **(X)**, used by the full paper and
  the authors' code: ``Σ_x = AᵀA`` and ``Σ_y = Σ_x + σ²I``, so σ is part of the loss and
  ``Σ_x`` is positive semi-definite by construction. ``"noisy"`` is **(N)**, the short
  paper's §3 as written: ``Σ_y⁻¹ = AᵀA``, the loss is Eq. 1,
  ``½‖A(y − μ)‖² − log|det A| + (C/2) log 2π`` with ``|det A|`` clamped at 10⁻⁸ as in the
  paper (σ is not used in training), and at test time ``Σ_x = Σ_y − σ²I`` is clamped to
  the nearest positive semi-definite matrix by clamping its eigenvalues at 0 (page
  {prf:ref}`prop-bs-clamp`; the paper's clamp of the diagonal alone does not give a valid
  covariance for colour images, as the page shows).
* ``sigma_mode``: ``"known"`` (σ of the fixed-level Gaussian noise model passed as
  ``noise``), ``"global"`` (one learned σ) or ``"per-image"`` (σ of each image estimated by
  an auxiliary, not blind, network: the pixel mean of its one-channel output). Learned σ
  uses ``σ̂ = softplus(sigma_scale·β + sigma_offset) + 10⁻³`` with ``sigma_offset = −4``
  (page {eq}`bs-sigma-param`), β the scalar or the auxiliary network's mean output, both
  zero at initialisation (the auxiliary network's last layer is zero-initialised), so σ̂
  starts at ≈ 0.0191 for every image. ``sigma_scale = 10`` is a reparameterisation for
  short budgets: Adam moves a parameter by about ``lr`` per step whatever its gradient,
  and reaching σ = 25/255 needs Δ(scale·β) ≈ 1.7, i.e. ≥ 1700 steps at lr 10⁻³ with
  scale 1 but ≈ 170 with scale 10 (the authors train for 10⁶ steps, where scale 1 is
  enough; book, Part 3). The likelihood only bounds σ from above (page
  {prf:ref}`prop-bs-sigma-ident`); as in the authors' code, the loss gets the term
  ``−sigma_reg · mean σ̂`` (``sigma_reg = 0.1``) to push σ̂ to the top of the flat range.
  Keep ``sigma_reg`` small: ``C log σ̂ − sigma_reg·σ̂`` is unbounded below as σ̂ → ∞, and
  a large weight makes σ̂ diverge.
* ``output``: ``"mu"`` (the blind-spot prior mean ``μ_x``) or ``"pme"`` (posterior mean).

Network output channel layout (``C`` image channels; :func:`n_outputs`): ``[0, C)`` =
``μ_x``; then ``C(C+1)/2`` entries of ``A``, the upper triangle row by row (for RGB
``a11, a12, a13, a22, a23, a33``; page {prf:ref}`alg-bs-bayes` step 2) for ``"full"``,
or the ``C`` diagonal entries ``a_cc`` for ``"per-component"``; nothing more for ``"l2"``.
The raw outputs are used as the entries of ``A``, as in the paper.
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

#: σ̂ = softplus(sigma_scale·β + sigma_offset) + SIGMA_FLOOR (page {eq}`bs-sigma-param`).
SIGMA_FLOOR = 1e-3
#: |det A| is clamped at this value before its logarithm in parameterisation (N) (paper, Eq. 1).
DET_EPS = 1e-8
LOG_2PI = math.log(2 * math.pi)


def _exact(y: torch.Tensor):
    """Autocast off: the covariance algebra runs in float64 even inside a mixed-precision step."""
    return torch.autocast(device_type=y.device.type, enabled=False)


def n_outputs(channels: int, mode: str) -> int:
    """Network output channels for ``channels`` image channels: C + C(C+1)/2 (full), 2C (per-component), C (l2).

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


def triangular_factor(entries: torch.Tensor, channels: int) -> torch.Tensor:
    """The upper-triangular ``A`` whose upper triangle, row by row, is ``entries``.

    Page {prf:ref}`alg-bs-bayes` step 2: for C = 3 the order is a11, a12, a13, a22, a23, a33
    (the order of ``torch.triu_indices(C, C)``).

    Args:
        entries: ``(..., C(C+1)/2)``.
        channels: C.

    Returns:
        ``(..., C, C)`` with zeros below the diagonal; dtype of ``entries``.

    Raises:
        ValueError: the last axis of ``entries`` is not C(C+1)/2.
    """
    c = channels
    if entries.shape[-1] != c * (c + 1) // 2:
        raise ValueError(f"expected {c * (c + 1) // 2} entries for C = {c}, got {entries.shape[-1]}")
    rows, cols = torch.triu_indices(c, c, device=entries.device)
    A = entries.new_zeros((*entries.shape[:-1], c, c))
    A[..., rows, cols] = entries
    return A


def clamp_psd(S: torch.Tensor) -> torch.Tensor:
    """The positive semi-definite matrix nearest to symmetric ``S`` (Frobenius norm): eigenvalues clamped at 0.

    Page {prf:ref}`prop-bs-clamp` (``Σ_x⁺`` for ``S = Σ_y − σ²I``). The paper (§3) clamps
    only the diagonal, which for C > 1 can leave negative eigenvalues.

    Args:
        S: ``(..., C, C)`` symmetric float tensor (float64 recommended).

    Returns:
        ``(..., C, C)`` symmetric PSD tensor, equal to ``S`` (up to rounding) where ``S`` is PSD.
    """
    if S.shape[-1] == 1:
        return S.clamp_min(0)
    S = 0.5 * (S + S.transpose(-1, -2))
    evals, evecs = torch.linalg.eigh(S)
    return (evecs * evals.clamp_min(0).unsqueeze(-2)) @ evecs.transpose(-1, -2)


def covariances(A: torch.Tensor, sigma: torch.Tensor, covariance: str = "clean",
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ_x, Σ_y)`` per pixel from the factor ``A`` and the noise level σ.

    Args:
        A: ``(..., C, C)`` upper-triangular factor, float64.
        sigma: σ in [0, 1] units, broadcastable to ``A.shape[:-2]``, float64.
        covariance: ``"clean"`` — page (X): ``Σ_x = AᵀA``, ``Σ_y = Σ_x + σ²I``
            ({eq}`bs-nll-x`); ``"noisy"`` — page (N), paper §3: ``Σ_y = (AᵀA)⁻¹`` and
            ``Σ_x = clamp_psd(Σ_y − σ²I)`` ({eq}`bs-param-inverse`, {eq}`bs-clamp`).

    Returns:
        ``Σ_x`` (positive semi-definite) and ``Σ_y``, each ``(..., C, C)``. For "noisy"
        ``A`` must be invertible (a singular ``A`` gives infinite entries).

    Raises:
        ValueError: unknown ``covariance``.
    """
    c = A.shape[-1]
    eye = torch.eye(c, dtype=A.dtype, device=A.device)
    s2 = (sigma ** 2)[..., None, None] * eye
    if covariance == "clean":
        sx = A.transpose(-1, -2) @ A
        return sx, sx + s2
    if covariance == "noisy":
        inv_A = torch.linalg.solve_triangular(A, eye.expand_as(A), upper=True)   # A⁻¹
        sy = inv_A @ inv_A.transpose(-1, -2)                                      # (AᵀA)⁻¹
        return clamp_psd(sy - s2), sy
    raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")


def gaussian_nll(y: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Negative log-density of ``N(mu, cov)`` at ``y``, log-determinant and constant included.

    ``½ (y − μ)ᵀ Σ⁻¹ (y − μ) + ½ log det Σ + (C/2) log 2π`` (page {eq}`bs-gauss-nll`),
    computed with the Cholesky factor ``Σ = LLᵀ`` (page {prf:ref}`alg-bs-bayes`, steps 3–4).

    Args:
        y, mu: ``(..., C)``, float64.
        cov: ``(..., C, C)`` symmetric positive definite, float64.

    Returns:
        ``(...)`` NLL per pixel, in nats; NaN where ``cov`` is not positive definite.

    The factorisation is :func:`torch.linalg.cholesky_ex`, which reports failures in a
    tensor instead of raising, so the training step never waits for the device.
    """
    L, info = torch.linalg.cholesky_ex(cov)
    z = torch.linalg.solve_triangular(L, (y - mu).unsqueeze(-1), upper=False).squeeze(-1)
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    nll = 0.5 * (z * z).sum(-1) + 0.5 * logdet + 0.5 * y.shape[-1] * LOG_2PI
    return torch.where(info == 0, nll, torch.full_like(nll, float("nan")))


def posterior_mean(y: torch.Tensor, mu: torch.Tensor, sigma_x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Posterior mean (= MAP) of ``x`` under the prior ``N(μ, Σ_x)`` and the likelihood ``N(y; x, σ²I)``.

    The paper's Eq. 3, ``x̂ = (Σ_x⁻¹ + σ⁻²I)⁻¹ (Σ_x⁻¹μ + σ⁻²y)``, evaluated in the gain form
    ``x̂ = y − σ² Σ_y⁻¹ (y − μ)`` with ``Σ_y = Σ_x + σ²I`` (page {eq}`bs-gain`), which is the
    same for invertible ``Σ_x`` and stays defined for a singular one.

    Args:
        y, mu: ``(..., C)``; sigma_x: ``(..., C, C)`` positive semi-definite; sigma: σ > 0
            broadcastable to ``y.shape[:-1]``. All float64.

    Returns:
        ``(..., C)``. σ → ∞ gives μ; Σ_x → ∞ (or σ → 0) gives y; Σ_x = 0 gives μ.
    """
    c = y.shape[-1]
    s2 = (sigma ** 2)[..., None]
    L = torch.linalg.cholesky(sigma_x + s2[..., None] * torch.eye(c, dtype=y.dtype, device=y.device))
    w = torch.cholesky_solve((y - mu).unsqueeze(-1), L).squeeze(-1)     # Σ_y⁻¹ (y − μ)
    return y - s2 * w


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
        net: a blind-spot network mapping ``(N, C, H, W)`` to ``(N, n_outputs(C, mode), H, W)``,
            normally :class:`~denoise_lib.models.BlindSpotUNet` (see :meth:`default_net`).
            Only a blind-spot network makes the loss meaningful.
        mode: ``"full"``, ``"per-component"`` or ``"l2"``.
        sigma_mode: ``"known"``, ``"global"`` or ``"per-image"`` (ignored for ``"l2"``).
        output: ``"mu"`` or ``"pme"`` — what :meth:`predict` (and so :meth:`denoise`) returns.
        noise: the noise model (:class:`~denoise_lib.noise.Gaussian` with one σ, or a spec
            string such as ``"gaussian:25"``); required for ``sigma_mode="known"``, ignored
            otherwise. :func:`denoise_lib.methods.build` passes it.
        covariance: ``"clean"`` (page (X), Σ_x = AᵀA; default) or ``"noisy"`` (page (N),
            Σ_y⁻¹ = AᵀA, paper Eq. 1).
        sigma_reg: weight of the ``−mean σ̂`` term for learned σ (0.1, as the authors' code).
        sigma_offset: learned ``σ̂ = softplus(sigma_scale·β + sigma_offset) + 10⁻³``; −4 (σ̂ ≈ 0.0191 at start).
        sigma_scale: multiplies β (10; equivalent to a 10× Adam learning rate for the σ
            parameters, see the module docstring).

    σ at test time (:meth:`sigma`, used by "pme"): ``"known"`` uses the given σ;
    ``"global"`` the learned scalar; ``"per-image"`` runs the σ network on the image being
    denoised (one σ̂ per image of the batch).

    ``requires = "single"``: training sees one noisy observation per image.

    Raises:
        ValueError: unknown option; ``output="pme"`` with ``mode="l2"`` (the L2 network
            predicts no variance, so there is nothing to weigh the centre pixel against);
            ``sigma_mode="known"`` without a fixed-σ Gaussian ``noise``; a learned σ with
            ``covariance="noisy"`` (σ does not enter Eq. 1, so it cannot be learned); a
            negative ``sigma_reg``; a network whose ``out_channels`` does not match ``mode``.
    """

    name = "laine19"
    requires = "single"
    inference_kwargs = ("output",)
    cost_note = ("4 rotated branches, each ≈1.5× the N2C U-Net (96-channel decoder convolutions), "
                 "plus a 384-channel 1×1 head: ≈7× N2C by FLOP count, not 4× (book, Part 3)")

    def __init__(self, net: nn.Module, *, mode: str = "full", sigma_mode: str = "known",
                 output: str = "pme", noise=None, covariance: str = "clean", sigma_reg: float = 0.1,
                 sigma_offset: float = -4.0, sigma_scale: float = 10.0):
        super().__init__(net)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if sigma_mode not in SIGMA_MODES:
            raise ValueError(f"sigma_mode must be one of {SIGMA_MODES}, got {sigma_mode!r}")
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        self._check_output(mode, output)
        if not sigma_reg >= 0:
            raise ValueError(f"sigma_reg must be ≥ 0, got {sigma_reg}")
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
        if not sigma_scale > 0:
            raise ValueError(f"sigma_scale must be > 0, got {sigma_scale}")
        self.sigma_reg, self.sigma_offset = float(sigma_reg), float(sigma_offset)
        self.sigma_scale = float(sigma_scale)
        self.known_sigma = _as_sigma(noise) if (mode != "l2" and sigma_mode == "known") else None
        if sigma_mode == "global" and mode != "l2":
            self.sigma_param = nn.Parameter(torch.zeros(()))           # β, page {eq}`bs-sigma-param`
        if sigma_mode == "per-image" and mode != "l2":
            from ..models import UNet

            self.sigma_net = UNet(in_channels=c, out_channels=1, features=16, depth=3)
            nn.init.zeros_(self.sigma_net.head.weight)      # zero-initialised last layer: σ̂ starts at ≈ 0.0191
            nn.init.zeros_(self.sigma_net.head.bias)

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _check_output(mode: str, output: str) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if output == "pme" and mode == "l2":
            raise ValueError("output='pme' is impossible with mode='l2': the L2 network predicts no "
                             "variance, so the posterior mean (Eq. 3) is undefined; use output='mu'")

    @classmethod
    def default_net(cls, channels: int, settings: dict, *, patch_size: int | None = None,
                    features: int = 48, depth: int | None = None) -> nn.Module:
        """A :class:`~denoise_lib.models.BlindSpotUNet` with :func:`n_outputs` output channels.

        Args:
            channels: image channels.
            settings: the constructor arguments; ``settings["mode"]`` (default ``"full"``)
                decides the output channels.
            patch_size: side of the training patches, when known.
            features: width (the paper's 48).
            depth: number of poolings per branch; default the paper's 5, or, when
                ``patch_size`` is known, :func:`~denoise_lib.models.blindspot.depth_for_patch`
                (3 for 64² patches, 5 for the paper's 256²): a branch deeper than the patch
                learns to rely on the zero rows above it and fails on full-size images.

        Raises:
            ValueError: unknown mode; a patch too small for any depth.
        """
        from ..models.blindspot import BlindSpotUNet, depth_for_patch

        if depth is None:
            depth = 5 if patch_size is None else depth_for_patch(patch_size)
        return BlindSpotUNet(in_channels=channels, out_channels=n_outputs(channels, settings.get("mode", "full")),
                             features=features, depth=depth)

    def extra_repr(self) -> str:
        return (f"requires={self.requires!r}, mode={self.mode!r}, sigma_mode={self.sigma_mode!r}, "
                f"output={self.output!r}, covariance={self.covariance!r}, known_sigma={self.known_sigma}")

    # ------------------------------------------------------------------ the model
    def sigma(self, y: torch.Tensor) -> torch.Tensor:
        """σ used for the noisy batch ``y`` (N, C, H, W): shape ``(N,)``, float64, [0, 1] units.

        Known: the constructor's σ. Global: ``softplus(sigma_scale·β + sigma_offset) + 10⁻³`` of the learned
        scalar β. Per-image: the same map of the pixel mean of the σ network's output on
        ``y`` (differentiable; it starts at ≈ 0.0191 for every image).

        Raises:
            ValueError: ``mode="l2"`` (no σ is used).
        """
        n = y.shape[0]
        if self.mode == "l2":
            raise ValueError("mode='l2' uses no σ")
        if self.sigma_mode == "known":
            return torch.full((n,), self.known_sigma, dtype=torch.float64, device=y.device)
        if self.sigma_mode == "global":
            beta = self.sigma_param.to(torch.float64).expand(n)
        else:
            beta = self.sigma_net(y).to(torch.float64).mean(dim=(1, 2, 3))
        return F.softplus(self.sigma_scale * beta + self.sigma_offset) + SIGMA_FLOOR

    def distribution(self, y: torch.Tensor, *, with_covariances: bool = True) -> dict[str, torch.Tensor]:
        """The predicted Gaussians for a noisy batch ``y`` (N, C, H, W); all float64, pixel-last.

        Returns ``mu`` (N, H, W, C) and, unless ``mode="l2"``, ``sigma`` (N,), ``A`` (the factor:
        (N, H, W, C, C) full, (N, H, W, C) diagonal for per-component) and, with
        ``with_covariances``, ``sigma_x`` and ``sigma_y`` ((N, H, W, C, C) for full,
        (N, H, W, C) variances for per-component). ``sigma_x`` is positive semi-definite
        (clamped for ``covariance="noisy"``; the loss of that parameterisation needs only
        ``A`` and skips the eigendecomposition of the clamp).

        Raises:
            ValueError: ``y`` is not (N, C, H, W) with this method's C.
        """
        c = self.channels
        if y.ndim != 4 or y.shape[1] != c:
            raise ValueError(f"{self.name} expects (N, {c}, H, W), got {tuple(y.shape)}")
        out = self.net(y)                    # the network may run under autocast (mixed precision)
        with _exact(y):                      # the Gaussian algebra does not: float64, autocast off
            return self._distribution(y, out.to(torch.float64).permute(0, 2, 3, 1), with_covariances)

    def _distribution(self, y, out, with_covariances):
        c = self.channels
        res = {"mu": out[..., :c]}
        if self.mode == "l2":
            return res
        sigma = self.sigma(y)
        res["sigma"] = sigma
        if not with_covariances:
            res["A"] = triangular_factor(out[..., c:], c) if self.mode == "full" else out[..., c:2 * c]
            return res
        if self.mode == "full":
            A = triangular_factor(out[..., c:], c)
            res["A"] = A
            res["sigma_x"], res["sigma_y"] = covariances(A, sigma[:, None, None], self.covariance)
        else:
            a = out[..., c:2 * c]
            s2 = (sigma ** 2)[:, None, None, None]
            res["A"] = a
            if self.covariance == "clean":                        # page {eq}`bs-nll-percomp`
                res["sigma_x"], res["sigma_y"] = a * a, a * a + s2
            else:
                vy = 1 / (a * a)
                res["sigma_x"], res["sigma_y"] = (vy - s2).clamp_min(0), vy
        return res

    def loss(self, batch: Batch):
        """Mean per-pixel NLL of the noisy batch (float64; minus ``sigma_reg·mean σ̂`` for learned σ),
        or the MSE for ``"l2"``.

        Logs ``nll`` (or ``mse``), ``mse_mu`` = mean (μ − y)² over all entries, and ``sigma``.
        """
        y = batch.noisy
        d = self.distribution(y, with_covariances=self.covariance == "clean")
        with _exact(y):
            return self._loss(y, d)

    def _loss(self, y, d):
        y64 = y.to(torch.float64).permute(0, 2, 3, 1)
        mse_mu = torch.mean((d["mu"] - y64) ** 2)
        if self.mode == "l2":
            return mse_mu, {"mse": mse_mu.detach()}
        diff = y64 - d["mu"]
        if self.covariance == "noisy":        # the paper's Eq. 1, |det A| clamped at 1e-8
            A = d["A"]
            if self.mode == "full":
                quad = ((A @ diff.unsqueeze(-1)).squeeze(-1) ** 2).sum(-1)
                det = torch.diagonal(A, dim1=-2, dim2=-1).prod(-1)
            else:
                quad, det = ((A * diff) ** 2).sum(-1), A.prod(-1)
            nll = (0.5 * quad - torch.log(det.abs().clamp_min(DET_EPS)) + 0.5 * y.shape[1] * LOG_2PI).mean()
        elif self.mode == "full":
            nll = gaussian_nll(y64, d["mu"], d["sigma_y"]).mean()
        else:
            v = d["sigma_y"]
            nll = (0.5 * diff ** 2 / v + 0.5 * torch.log(v) + 0.5 * LOG_2PI).sum(-1).mean()
        loss = nll
        if self.sigma_mode != "known":
            loss = loss - self.sigma_reg * d["sigma"].mean()
        return loss, {"nll": nll.detach(), "mse_mu": mse_mu.detach(), "sigma": d["sigma"].mean().detach()}

    def predict(self, y: torch.Tensor) -> torch.Tensor:
        """``μ_x`` (output "mu") or the posterior mean (output "pme"), float32 (N, C, H, W)."""
        return self.predict_all(y)[self.output]

    def predict_all(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both estimates for a noisy batch: ``{"mu": …, "pme": …}`` (no "pme" for l2), float32 NCHW."""
        d = self.distribution(y)
        res = {"mu": d["mu"]}
        if self.mode != "l2":
            return self._predict_all(y, d, res)
        return {k: v.permute(0, 3, 1, 2).to(torch.float32).contiguous() for k, v in res.items()}

    def _predict_all(self, y, d, res):
        with _exact(y):
            y64 = y.to(torch.float64).permute(0, 2, 3, 1)
            s = d["sigma"][:, None, None]
            if self.mode == "full":
                res["pme"] = posterior_mean(y64, d["mu"], d["sigma_x"], s)
            else:                                   # page {eq}`bs-percomp`, per channel
                vx, s2 = d["sigma_x"], (s ** 2)[..., None]
                res["pme"] = (s2 * d["mu"] + vx * y64) / (s2 + vx)
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
