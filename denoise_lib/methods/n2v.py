"""Noise2Void: self-supervised training by masking with uniform pixel selection.

Krull, Buchholz & Jug (2019), "Noise2Void — learning denoising from single noisy
images", Sec. 3. Each training patch gets a sparse stratified mask J (about 0.2 % of
its pixels, a few per 64×64 patch), the masked pixels are replaced by a randomly
chosen neighbour (UPS, centre excluded, 5×5 neighbourhood), and the loss is the
squared error **at the masked pixels only**, normalised by their number:

    L_N2V(θ) = Σ_{p ∈ J} ‖f_θ(y_{J^c})_p − y_p‖² / (|J|·C)

(``y`` noisy, book notation). Because ``f_θ(y_{J^c})_J`` does not see ``y_J``, the
expected loss is the supervised loss plus the noise variance (Batson & Royer 2019;
Noise2Same §2, Eq. (2)). Inference is one plain forward pass ``f_θ(y)`` as in the
paper. Masking code: :mod:`denoise_lib.masks`.
"""
from __future__ import annotations

from .. import masks
from .base import Batch, Method

__all__ = ["Noise2Void"]


class Noise2Void(Method):
    """Noise2Void (Krull et al. 2019): UPS masking, loss on masked pixels only.

    Args:
        net: network mapping (N, C, H, W) → (N, C, H, W).
        fraction: share of masked pixels per patch, in (0, 1/4]; default 0.002 (0.2 %,
            one pixel per 22×22 cell, ≈ 8.5 per 64×64 patch).
        radius: UPS neighbourhood radius r (default 2: 5×5).

    ``requires = "single"``: one noisy observation per image. The masks and the UPS
    choices are drawn from ``batch.generator``.

    Raises:
        ValueError: ``fraction`` outside (0, 1/4] or ``radius`` < 1.
    """

    name = "n2v"
    requires = "single"

    def __init__(self, net, fraction: float = 0.002, radius: int = 2):
        super().__init__(net)
        masks.cell_size(fraction)
        if not isinstance(radius, int) or radius < 1:
            raise ValueError(f"radius must be an integer ≥ 1, got {radius!r}")
        self.fraction, self.radius = float(fraction), radius

    def loss(self, batch: Batch):
        """Masked MSE (see the module docstring); logs ``mse_masked`` and ``masked_pixels`` (detached tensors)."""
        y = batch.noisy
        masked, mask = masks.mask_batch(y, self.fraction, "ups", radius=self.radius, generator=batch.generator)
        mse = masks.masked_mse(self.net(masked), y, mask)
        return mse, {"mse_masked": mse.detach(), "masked_pixels": mask.sum().float()}
