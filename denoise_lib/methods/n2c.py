"""Noise2Clean: supervised training with clean targets (the upper reference).

Loss (per-pixel mean squared error, Lehtinen et al. 2018, Eq. 1 with L2):
``L_N2C(θ) = mean ‖f_θ(y) − x‖²`` over the batch, with ``y`` noisy and ``x`` clean.
Book: Part 1, "Noise2Clean and Noise2Noise".
"""
from __future__ import annotations

import torch

from .base import Batch, Method

__all__ = ["Noise2Clean"]


class Noise2Clean(Method):
    """Supervised denoiser trained on (noisy, clean) pairs.

    Args:
        net: network mapping (N, C, H, W) → (N, C, H, W).

    ``requires = "clean"``: the training batch carries ``batch.clean``.
    """

    name = "n2c"
    requires = "clean"

    def loss(self, batch: Batch):
        if batch.clean is None:
            raise ValueError("Noise2Clean needs clean targets in the batch (batch.clean)")
        mse = torch.mean((self.net(batch.noisy) - batch.clean) ** 2)
        return mse, {"mse": mse.detach()}
