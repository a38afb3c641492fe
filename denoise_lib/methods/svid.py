"""SVID: self-verification image denoising (Lin, Zhuang, Zeng, Huang, Ding & Paisley, 2021).

Book: Part 7; "Eq. (n)" is the paper's own numbering. Notation: ``y`` noisy, ``x``
clean, ``F = f_θ`` the network, values in [0, 1]. There is no public code; this module
implements the paper's equations.

One training step on a noisy batch ``y`` (their Fig. 2 and §3.1):

1. ``η = F(y)`` — the network's current estimate, the "prior" (their Eq. 14);
   the removed noise is ``n̂ = y − η``.
2. Adaptive re-noising, their Eq. (9): draw a fresh mask ``m`` with i.i.d. entries
   ``±1`` (probability ½ each; same shape as ``y``, so each pixel **and channel** has its
   own sign) and form

       y₂ = D(η) = η + m ⊙ (y − η) = η + n₂,      n₂ = m ⊙ n̂.

   Where ``m = +1`` the pixel of ``y₂`` is the observed one; where ``m = −1`` it is the
   observation reflected about the estimate, ``2η − y``.
3. Self-verification, their Eq. (10): ``L_sv = mean (F(y₂) − sg(η))²``.

**Stop-gradient** (``stop_gradient=True``, the paper's method): ``η`` is a constant of
the step, so ``y₂`` is too, and the gradient flows only through ``F(y₂)``: this is the
θ-step of their EM view, Eq. (15), with ``η`` assigned by Eq. (14).
``stop_gradient=False`` (registry name ``svid-nostopgrad``; their §4.3 / Fig. 9
ablation) differentiates the literal second term of their Eq. (8),
``‖F(D(F(y))) − F(y)‖²``, through the target **and** through ``y₂``. Any constant
network makes it 0; the paper reports collapse to 0.

**Data-fidelity term** (``fidelity``). The paper's starting point, Eq. (5)/(8), is
``‖F(y) − y‖² + α ‖F(D(F(y))) − F(y)‖²``. Its §3.2 drops the first term because the
expansion Eq. (11) of the regulariser "implicitly includes" it — an argument that holds
without the stop-gradient, but not with it: under ``sg`` that term of Eq. (11) is a
constant of the step and gives no gradient (the book, Part 7, proves it). This class therefore
implements Eq. (8) divided by α, with the stop-gradient of Eq. (10) on the target:

    L = mean (F(y₂) − sg(F(y)))²  +  κ_t · mean (F(y) − y)²,   κ = 1/α,

where κ_t falls linearly from ``fidelity_start`` at step 0 to ``fidelity`` at step
``warmup_steps`` and stays there (:meth:`SVID.fidelity_at`; the step is the training
loop's global step, ``Batch.step``). ``fidelity=0, warmup_steps=0`` is exactly Eq. (10);
``warmup_steps=0`` alone is Eq. (8) with a constant α. The paper gives no value of α.
(The book writes the weight κ: λ is the Poisson level there.)

Defaults: κ from 1 (α = 1) to 0.1 (α = 10) over the first 300 steps. The warm-up is
**not in the paper**, and the reasoning behind it is a heuristic (book, Part 7, "The EM
view"): a large data weight first moves the estimate along the Deep Image Prior
trajectory (their Eq. 4, their own motivation in §1.1); κ must then end below 1/8, since
above it the identity is the only fixed point of the book's scalar model, and the
warm-up should end while the estimate still passes the noise weakly, so a narrower
network, which follows the Deep Image Prior trajectory faster, gets a shorter one (the
Part 7 notebook uses 100 steps with its 24-feature U-Net). The Part 7 notebook compares
the result with Eq. (10) alone from the same random initialisation.

Inference is one forward pass ``F(y)`` (§3.3: "the CNN with fixed parameters θ* is
directly applied to other noisy images"). The network is the paper's plain U-Net
(the course's N2N U-Net; not residual: with ``F = identity + R`` and ``R ≈ 0`` at
initialisation, ``y₂ ≈ y`` and the loss is close to 0 from the first step — the
identity is a fixed point, see the book, Part 7).
"""
from __future__ import annotations

import torch

from .base import Batch, Method

__all__ = ["SVID", "random_signs", "renoise", "noise_components", "collapse_stats",
           "DEFAULT_FIDELITY", "DEFAULT_FIDELITY_START", "DEFAULT_WARMUP_STEPS",
           "COLLAPSE_MEAN_ABS", "COLLAPSE_VAR_RATIO"]

#: Default weight of the data-fidelity term after the warm-up, 1/α of their Eq. (8) (α = 10).
DEFAULT_FIDELITY = 0.1
#: Default weight at step 0 (α = 1) …
DEFAULT_FIDELITY_START = 1.0
#: … decreasing linearly to DEFAULT_FIDELITY over this many training steps.
DEFAULT_WARMUP_STEPS = 300
#: Collapse criterion of the Part 7 notebook (their Fig. 9): the output counts as collapsed
#: when its mean absolute value is below this …
COLLAPSE_MEAN_ABS = 0.05
#: … or its variance is below this fraction of the input's variance.
COLLAPSE_VAR_RATIO = 0.01


def random_signs(shape, *, generator: torch.Generator | None = None, device=None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """I.i.d. entries ``+1`` or ``−1`` with probability ½ each (the mask ``m`` of their Eq. 9).

    Args:
        shape: output shape.
        generator: source of randomness. Its device is used for the draw, and the
            result is moved to ``device``. None uses the global torch RNG on ``device``.
        device: device of the result (default: the generator's device, else CPU).
        dtype: floating dtype of the result.

    Returns:
        tensor of ``shape`` with values in {−1, +1}.
    """
    draw_device = generator.device if generator is not None else torch.device(device or "cpu")
    bits = torch.randint(0, 2, tuple(shape), generator=generator, device=draw_device)
    m = (2 * bits - 1).to(dtype)
    return m.to(device) if device is not None else m


def renoise(y: torch.Tensor, denoised: torch.Tensor, *, generator: torch.Generator | None = None,
            mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive re-noising D of their Eq. (9): ``y₂ = F(y) + m ⊙ (y − F(y))``.

    Args:
        y: noisy images, float (N, C, H, W) (any shape works).
        denoised: ``F(y)``, same shape. Detach it first for the stop-gradient version.
        generator: source of the fresh mask (see :func:`random_signs`); ignored when
            ``mask`` is given.
        mask: use this ±1 mask instead of drawing one (same shape as ``y``).

    Returns:
        ``(y₂, m)``; ``y₂ − F(y) = m ⊙ (y − F(y))`` entry by entry (up to rounding).

    Raises:
        ValueError: shapes differ, or ``mask`` has entries other than ±1.
    """
    if y.shape != denoised.shape:
        raise ValueError(f"y {tuple(y.shape)} and F(y) {tuple(denoised.shape)} must have the same shape")
    if mask is None:
        mask = random_signs(y.shape, generator=generator, device=y.device, dtype=y.dtype)
    else:
        if mask.shape != y.shape:
            raise ValueError(f"mask {tuple(mask.shape)} must have the shape of y {tuple(y.shape)}")
        if not bool(((mask == 1) | (mask == -1)).all()):
            raise ValueError("the re-noising mask must hold only +1 and -1")
        mask = mask.to(device=y.device, dtype=y.dtype)
    return denoised + mask * (y - denoised), mask


def noise_components(y: torch.Tensor, denoised: torch.Tensor, mask: torch.Tensor,
                     clean: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The three noises of their Fig. 4, as detached tensors of the shape of ``y``.

    ``"n_hat"`` = ``n̂ = y − F(y)`` (the removed noise), ``"n2"`` = ``n₂ = m ⊙ n̂ = y₂ − F(y)``
    (the synthesised noise) and, only when ``clean`` is given, ``"n"`` = ``y − x`` (the true
    noise; for notebooks, never for training).
    """
    n_hat = (y - denoised).detach()
    out = {"n_hat": n_hat, "n2": (mask * n_hat).detach()}
    if clean is not None:
        if clean.shape != y.shape:
            raise ValueError(f"clean {tuple(clean.shape)} and y {tuple(y.shape)} must have the same shape")
        out["n"] = (y - clean.to(y.device)).detach()
    return out


def collapse_stats(output: torch.Tensor, y: torch.Tensor) -> dict[str, float | bool]:
    """Is ``output`` collapsed (their Fig. 9)? Mean |output| and Var(output)/Var(y).

    Returns:
        ``{"mean_abs": mean |output|, "var_ratio": Var(output) / Var(y), "collapsed": bool}``,
        collapsed when ``mean_abs < COLLAPSE_MEAN_ABS`` or ``var_ratio < COLLAPSE_VAR_RATIO``.
        Variances are over all entries of the batch.
    """
    output, y = output.detach().float(), y.detach().float()
    mean_abs = float(output.abs().mean())
    var_ratio = float(output.var(unbiased=False) / y.var(unbiased=False).clamp_min(1e-20))
    return {"mean_abs": mean_abs, "var_ratio": var_ratio,
            "collapsed": mean_abs < COLLAPSE_MEAN_ABS or var_ratio < COLLAPSE_VAR_RATIO}


class SVID(Method):
    """Self-verification image denoising (Lin et al. 2021), their Eq. (9)–(10), optionally Eq. (8).

    Args:
        net: the denoiser ``F``, mapping (N, C, H, W) → (N, C, H, W) (the paper's plain U-Net).
        stop_gradient: True (the paper): no gradient through ``F(y)``, neither in the
            target nor in ``y₂``. False: the literal Eq. (8) regulariser, differentiated
            through everything (the collapse ablation of their §4.3).
        fidelity: weight κ = 1/α of the data term ``mean (F(y) − y)²`` of their Eq. (8)
            after the warm-up (≥ 0; default :data:`DEFAULT_FIDELITY` = 0.1).
        fidelity_start: κ at step 0 (default :data:`DEFAULT_FIDELITY_START` = 1).
        warmup_steps: steps over which κ falls linearly from ``fidelity_start`` to
            ``fidelity`` (default :data:`DEFAULT_WARMUP_STEPS` = 300; 0 = constant κ).
            ``fidelity=0, warmup_steps=0`` is their Eq. (10) exactly. See the module
            docstring for why the default is not that.

    ``requires = "single"``: only one noisy observation per image. Every call of
    :meth:`loss` draws a fresh mask ``m`` from ``batch.generator``.

    Raises:
        ValueError: negative or non-finite ``fidelity``/``fidelity_start``, or a negative
            ``warmup_steps``.
    """

    name = "svid"
    requires = "single"
    cost_note = ("two forward passes (F(y), then F(y₂) on the re-noised input, which needs F(y) first) and "
                 "a backward through both while the data-term weight is > 0 (always, by default): ≈ 2× N2C; "
                 "with fidelity 0 the first pass runs without gradient")

    def __init__(self, net, *, stop_gradient: bool = True, fidelity: float = DEFAULT_FIDELITY,
                 fidelity_start: float = DEFAULT_FIDELITY_START, warmup_steps: int = DEFAULT_WARMUP_STEPS):
        super().__init__(net)
        for label, v in (("fidelity", fidelity), ("fidelity_start", fidelity_start)):
            if not (float(v) >= 0 and float(v) < float("inf")):
                raise ValueError(f"{label} (1/α of Eq. 8) must be finite and ≥ 0, got {v!r}")
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        self.stop_gradient = bool(stop_gradient)
        self.fidelity, self.fidelity_start = float(fidelity), float(fidelity_start)
        self.warmup_steps = int(warmup_steps)

    def fidelity_at(self, step: int) -> float:
        """κ at training step ``step``: linear from ``fidelity_start`` (step 0) to ``fidelity``
        (step ``warmup_steps`` and later); ``fidelity`` throughout when ``warmup_steps = 0``."""
        if self.warmup_steps == 0:
            return self.fidelity
        w = max(0.0, 1.0 - step / self.warmup_steps)
        return self.fidelity + (self.fidelity_start - self.fidelity) * w

    def terms(self, y: torch.Tensor, *, generator: torch.Generator | None = None, fidelity: float | None = None,
              mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The loss terms on a noisy batch ``y`` (float (B, C, H, W)); ``sv`` and ``fid`` carry gradients.

        Args:
            y: noisy batch.
            generator: source of the fresh mask ``m`` (any device); required
                unless ``mask`` is given.
            fidelity: the data-term weight this step will use (default ``self.fidelity``);
                ``F(y)`` keeps its graph only when it is > 0 or without stop-gradient.
            mask: a ±1 mask to use instead of a fresh draw (tests).

        Returns:
            ``{"sv": mean (F(y₂) − target)², "fid": mean (F(y) − y)², "y2": y₂, "mask": m,
            "denoised": F(y) (with its graph unless stop-gradient and fidelity = 0),
            "target": the regression target}``.

        Raises:
            ValueError: neither ``generator`` nor ``mask`` given.
        """
        if generator is None and mask is None:
            raise ValueError("SVID.terms needs a generator for the mask (the loss passes batch.generator) "
                             "or an explicit mask")
        lam = self.fidelity if fidelity is None else fidelity
        need_graph = (not self.stop_gradient) or lam > 0
        with torch.set_grad_enabled(need_graph and torch.is_grad_enabled()):
            fy = self.net(y)
        target = fy.detach() if self.stop_gradient else fy
        y2, m = renoise(y, target, generator=generator, mask=mask)
        out2 = self.net(y2)
        sv = torch.mean((out2 - target) ** 2)
        fid = torch.mean((fy - y) ** 2)
        return {"sv": sv, "fid": fid, "y2": y2, "mask": m, "denoised": fy, "target": target}

    def loss(self, batch: Batch):
        """``sv + κ_t · fid`` (module docstring), the mask drawn from ``batch.generator``.

        Logs ``sv``, ``fid``, ``out_mean_abs``, ``out_var_ratio`` (Var F(y) / Var y, the
        collapse diagnostics) and ``res_std`` (std of n̂) as detached scalar tensors, and
        ``fidelity`` (κ_t, a Python float).
        """
        y = batch.noisy
        lam = self.fidelity_at(batch.step)
        t = self.terms(y, generator=batch.generator, fidelity=lam)
        loss = t["sv"] + lam * t["fid"] if lam > 0 else t["sv"]
        fy = t["denoised"].detach()
        logs = {"sv": t["sv"].detach(), "fid": t["fid"].detach(),
                "out_mean_abs": fy.abs().mean(),
                "out_var_ratio": fy.var(unbiased=False) / y.var(unbiased=False).clamp_min(1e-20),
                "res_std": (y - fy).std(unbiased=False),
                "fidelity": lam}
        return loss, logs

    @torch.no_grad()
    def noise_samples(self, y: torch.Tensor, clean: torch.Tensor | None = None, *,
                      generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``n̂``, ``n₂`` (and the true ``n`` when ``clean`` is given) for noisy images ``y`` (their Fig. 4).

        Runs the network in eval mode without gradients, draws one fresh mask from
        ``generator`` (any device; the mask is moved to the network's), and returns CPU
        tensors of the shape of ``y`` (see :func:`noise_components`).
        """
        was = self.training
        self.eval()
        try:
            device = next(iter(self.parameters()), torch.empty(0)).device
            y = y.to(device)
            fy = self.net(y)
            _, m = renoise(y, fy, generator=generator)
            comps = noise_components(y, fy, m, clean)
        finally:
            self.train(was)
        return {k: v.cpu() for k, v in comps.items()}

    def extra_repr(self) -> str:
        return (f"requires={self.requires!r}, stop_gradient={self.stop_gradient}, fidelity={self.fidelity:g}, "
                f"fidelity_start={self.fidelity_start:g}, warmup_steps={self.warmup_steps}")
