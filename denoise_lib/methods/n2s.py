"""Noise2Self: self-supervision through J-invariance, with noise or donut masking.

Batson & Royer (2019), "Noise2Self: blind denoising by self-supervision" (ICML), and
their code (``mask.py``).
The training objective is Noise2Void's (masked pixels only, normalised by their
number; :class:`~denoise_lib.methods.n2v.Noise2Void`) with a different replacement:

* ``"random"`` — uniform random values on the data range [0, 1] ("Noise2Self-Noise",
  the masking of the paper's experiments as described by Noise2Same §5.1);
* ``"donut"`` — the mean of the 8 neighbours ("Noise2Self-Donut");
* ``"zero"`` — zeros.

Noise2Self masks one pixel of every 4×4 cell (its grid masker of width 4); here the
mask is stratified with the same density, 1/16, and a random position per cell
(:func:`denoise_lib.masks.stratified_mask`).

Inference is ``f_θ(y)`` by default (Noise2Same §3.1: the mask is removed at test time
because the plain network does better than its J-invariant version), or, with
``j_invariant=True``, the paper's J-invariant prediction
(:func:`denoise_lib.invariance.j_invariant_predict`, ``grid²`` forward passes).
"""
from __future__ import annotations

import torch

from .. import masks
from ..invariance import j_invariant_predict
from .base import Batch, Method

__all__ = ["Noise2Self"]

_REPLACEMENTS = ("random", "donut", "zero")


class Noise2Self(Method):
    """Noise2Self (Batson & Royer 2019) with noise, donut or zero replacement.

    Args:
        net: network mapping (N, C, H, W) → (N, C, H, W).
        replacement: "random" (default), "donut" or "zero".
        fraction: share of masked pixels, in (0, 1/4]; default 1/16 (one per 4×4 cell).
        j_invariant: predict with :func:`~denoise_lib.invariance.j_invariant_predict`
            instead of one plain forward pass.
        grid: sub-grid spacing of the J-invariant prediction (``grid²`` passes).

    ``requires = "single"``. Training masks and replacement values are drawn from
    ``batch.generator``. The J-invariant prediction uses the same replacement; its
    random draws come from a generator seeded with 0, so that :meth:`denoise` is
    deterministic.

    Raises:
        ValueError: unknown replacement, bad fraction or grid < 2.
    """

    name = "n2s"
    requires = "single"

    def __init__(self, net, replacement: str = "random", fraction: float = 1 / 16,
                 j_invariant: bool = False, grid: int = 4):
        super().__init__(net)
        if replacement not in _REPLACEMENTS:
            raise ValueError(f"Noise2Self replacement must be one of {', '.join(_REPLACEMENTS)}, "
                             f"got {replacement!r}")
        masks.cell_size(fraction)
        if not isinstance(grid, int) or grid < 2:
            raise ValueError(f"grid must be an integer ≥ 2, got {grid!r}")
        self.replacement, self.fraction = replacement, float(fraction)
        self.j_invariant, self.grid = bool(j_invariant), grid

    def loss(self, batch: Batch):
        """Masked MSE on the replaced pixels; logs ``mse_masked``."""
        y = batch.noisy
        masked, mask = masks.mask_batch(y, self.fraction, self.replacement, generator=batch.generator)
        mse = masks.masked_mse(self.net(masked), y, mask)
        return mse, {"mse_masked": mse.detach()}

    def predict(self, y: torch.Tensor) -> torch.Tensor:
        """``f_θ(y)``, or its J-invariant version when ``j_invariant`` (``grid²`` passes)."""
        if not self.j_invariant:
            return self.net(y)
        g = torch.Generator(device=y.device).manual_seed(0)
        return j_invariant_predict(self.net, y, self.grid, self.replacement, generator=g)
