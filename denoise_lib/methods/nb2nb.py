"""Neighbor2Neighbor: Noise2Noise on two neighbour sub-samples of one noisy image, plus a regulariser.

Huang et al. (2021), "Neighbor2Neighbor: self-supervised denoising from single noisy
images", §4 and Algorithm 1. Book: Part 5. Notation: ``y`` noisy, ``x`` clean, ``f`` the network.

One training step on a noisy batch ``y`` (N, C, H, W):

1. draw a neighbour sub-sampler ``G = (g1, g2)`` from ``batch.generator``
   (:mod:`denoise_lib.subsample`; ``"random"``: one of the 8 ordered 4-adjacent pairs
   per 2×2 cell, their §4.1; ``"fixed"``: one pair per image for all its cells, their
   Table 4, drawn like the paper's "two of the k² sub-sampled images", i.e. among the
   12 ordered pairs of distinct cell positions including the 4 diagonal ones, unless
   ``diagonal=False``);
2. ``f̄ = f(y)`` at full resolution under ``torch.no_grad`` (the stop-gradient of their
   §4.2), then ``g1(f̄), g2(f̄)`` with the **same** ``G``;
3. ``out = f(g1(y))`` with gradients (a quarter of the pixels);
4. ``L_rec = mean (out − g2(y))²`` and
   ``L_reg = mean (out − g2(y) − (g1(f̄) − g2(f̄)))²`` (their Eq. (7), as per-entry means
   like the authors' code);
5. ``loss = L_rec + γ_t · L_reg``.

γ schedule. ``gamma_schedule="constant"``: ``γ_t = γ``. ``"ramp"`` (default, their
§4.2 "gradually increase γ"; the authors' code uses ``Lambda = epoch / n_epoch · 2``, a
linear ramp over the whole training):

* by default (``ramp_steps=None``) γ follows the training budget: ``γ_t = γ · p`` with
  ``p ∈ [0, 1]`` the fraction of the budget used before the step, ``batch.progress``
  (set by :func:`denoise_lib.train.fit`, by steps or by time). γ thus grows from 0 at
  the first step to γ at the end of training, whatever the budget. A batch without a
  progress value (built by hand) uses a ramp of :data:`DEFAULT_RAMP_STEPS` steps;
* with ``ramp_steps=T``: ``γ_t = γ · min(1, (t + 1)/T)`` at step ``t = batch.step``
  (0-based), from ``γ/T`` at the first step to γ from step ``T − 1`` on.

Odd sizes: the sub-samplers use ``⌊H/2⌋ × ⌊W/2⌋`` cells; the last row/column of an odd
image is left out of both sub-images (``odd="crop"``), or an error is raised
(``odd="raise"``). The full-resolution pass sees the whole image.

Inference is one full-resolution pass ``f(y)`` (their Fig. 1(b)).
"""
from __future__ import annotations

import math

import torch

from .. import subsample
from .base import Batch, Method

__all__ = ["Neighbor2Neighbor", "SCHEDULES", "DEFAULT_RAMP_STEPS"]

SCHEDULES = ("ramp", "constant")
#: Ramp length (steps) used when neither ``ramp_steps`` nor ``batch.progress`` is available.
DEFAULT_RAMP_STEPS = 1000


class Neighbor2Neighbor(Method):
    """Neighbor2Neighbor (Huang et al. 2021, Eq. (7), Algorithm 1).

    Args:
        net: network mapping (N, C, H, W) → (N, C, H, W) for any H, W.
        sampler: ``"random"`` (their §4.1; registry name ``nb2nb``) or ``"fixed"`` (the
            fixed-location sampler of their Table 4; ``nb2nb-fixed``).
        gamma: final weight γ ≥ 0 of the regulariser (2 for synthetic noise, their §5.1).
        gamma_schedule: ``"ramp"`` (linear from 0 to γ; module docstring) or ``"constant"``.
        ramp_steps: None (default: the ramp spans the whole training budget, from
            ``batch.progress``) or the length of the ramp in training steps (≥ 1).
        pair: with ``sampler="fixed"``, pin the pair code (0–11, :data:`denoise_lib.subsample.ALL_PAIRS`;
            0–7 with ``diagonal=False``) for every image instead of drawing one per image.
        diagonal: include the diagonal pairs of a cell (:data:`denoise_lib.subsample.DIAGONAL_PAIRS`).
            Default None: the paper's choice, True for ``"fixed"`` (its two-of-four
            sub-images construction) and False for ``"random"``.
        odd: ``"crop"`` or ``"raise"``, the odd-size policy of :func:`denoise_lib.subsample.half_size`.

    ``requires = "single"``. The sub-samplers are drawn from ``batch.generator``.

    Raises:
        ValueError: unknown sampler, schedule or odd policy; negative or non-finite γ;
            ``ramp_steps`` not None and not an integer ≥ 1; a bad ``pair`` or ``diagonal``.
    """

    name = "nb2nb"
    requires = "single"
    cost_note = ("forward+backward on the quarter-size sub-images (¼) plus one no-grad forward at full "
                 "resolution (≈ ⅓): ≈ 0.58× N2C in FLOPs")

    def __init__(self, net, *, sampler: str = "random", gamma: float = 2.0, gamma_schedule: str = "ramp",
                 ramp_steps: int | None = None, pair: int | None = None, odd: str = "crop",
                 diagonal: bool | None = None):
        super().__init__(net)
        subsample.check_sampler(sampler, pair, diagonal)
        if gamma_schedule not in SCHEDULES:
            raise ValueError(f"gamma_schedule must be one of {SCHEDULES}, got {gamma_schedule!r}")
        try:
            gamma = float(gamma)
        except (TypeError, ValueError):
            raise ValueError(f"gamma must be a number ≥ 0, got {gamma!r}") from None
        if not (gamma >= 0 and math.isfinite(gamma)):
            raise ValueError(f"gamma must be finite and ≥ 0, got {gamma!r}")
        try:
            bad_ramp = ramp_steps is not None and (int(ramp_steps) != ramp_steps or ramp_steps < 1)
        except (TypeError, ValueError):
            bad_ramp = True
        if bad_ramp:
            raise ValueError(f"ramp_steps must be an integer ≥ 1, got {ramp_steps!r}")
        if odd not in subsample.ODD_POLICIES:
            raise ValueError(f"odd must be one of {subsample.ODD_POLICIES}, got {odd!r}")
        self.sampler, self.gamma, self.gamma_schedule = sampler, gamma, gamma_schedule
        self.ramp_steps = None if ramp_steps is None else int(ramp_steps)
        self.pair, self.odd, self.diagonal = pair, odd, diagonal

    def gamma_at(self, step: int, progress: float | None = None) -> float:
        """γ_t at training step ``step`` (0-based) and budget fraction ``progress`` ∈ [0, 1] (or None).

        Constant schedule: γ. Ramp: ``γ · min(1, (step + 1)/ramp_steps)`` when
        ``ramp_steps`` is set, else ``γ · progress`` (clipped to [0, 1]), else a ramp of
        :data:`DEFAULT_RAMP_STEPS` steps.
        """
        if self.gamma_schedule == "constant":
            return self.gamma
        if self.ramp_steps is None and progress is not None:
            return self.gamma * min(max(float(progress), 0.0), 1.0)
        length = self.ramp_steps if self.ramp_steps is not None else DEFAULT_RAMP_STEPS
        return self.gamma * min(1.0, (int(step) + 1) / length)

    def choose(self, y: torch.Tensor, generator: torch.Generator) -> subsample.NeighbourChoice:
        """Draw this method's sub-sampler for the batch ``y`` (N, C, H, W) from ``generator``.

        Raises:
            ValueError: as :func:`denoise_lib.subsample.choose` (e.g. odd size with ``odd="raise"``).
        """
        return subsample.choose(y, sampler=self.sampler, generator=generator, pair=self.pair, odd=self.odd,
                                diagonal=self.diagonal)

    def terms(self, y: torch.Tensor, choice: subsample.NeighbourChoice, *,
              regulariser: bool = True) -> dict[str, torch.Tensor]:
        """The loss terms on a noisy batch ``y`` (float (N, C, H, W)).

        Args:
            y: noisy batch.
            choice: the sub-sampler to use (:meth:`choose`).
            regulariser: compute ``L_reg`` (needs the full-resolution pass); with False
                only ``rec`` is returned (used when γ = 0: same loss, one pass fewer).

        Returns:
            ``{"rec": L_rec (with grad), "reg": L_reg (with grad), "gap": mean (g1(f̄) − g2(f̄))²
            (detached)}``, scalar tensors; only ``f(g1(y))`` carries gradients.
        """
        g1, g2 = choice.apply(y)
        diff = self.net(g1) - g2
        out = {"rec": diff.square().mean()}
        if regulariser:
            with torch.no_grad():                   # stop-gradient of their §4.2
                f1, f2 = choice.apply(self.net(y))
                target_gap = f1 - f2
            out["reg"] = (diff - target_gap).square().mean()
            out["gap"] = target_gap.square().mean()
        return out

    def loss(self, batch: Batch):
        """``L_rec + γ_t · L_reg`` (their Eq. (7)), the sub-sampler drawn from ``batch.generator``.

        Logs ``rec``, ``reg`` and ``gap`` (detached scalar tensors; ``reg`` and ``gap`` not
        when γ = 0) and ``gamma`` (γ_t, a Python float).
        """
        y = batch.noisy
        gamma = self.gamma_at(batch.step, batch.progress)
        choice = self.choose(y, batch.generator)
        t = self.terms(y, choice, regulariser=self.gamma > 0)   # γ = 0 (ablation): no full pass needed
        loss = t["rec"] + gamma * t["reg"] if self.gamma > 0 else t["rec"]
        logs = {k: v.detach() for k, v in t.items()}
        logs["gamma"] = gamma
        return loss, logs

    def extra_repr(self) -> str:
        extra = f", pair={self.pair}" if self.pair is not None else ""
        extra += f", diagonal={subsample.uses_diagonal(self.sampler, self.diagonal)}"
        ramp = "budget" if self.ramp_steps is None else self.ramp_steps
        return (f"requires={self.requires!r}, sampler={self.sampler!r}{extra}, gamma={self.gamma:g}, "
                f"gamma_schedule={self.gamma_schedule!r}, ramp_steps={ramp}, odd={self.odd!r}")
