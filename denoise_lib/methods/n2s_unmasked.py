"""The unmasked self-supervised baseline: a network trained to reproduce its noisy input.

Loss: ``L(θ) = mean (f_θ(y) − y)²`` over all pixels (``y`` noisy, book notation).
Its global minimiser is the identity ``f(y) = y``, which this loss drives the network
towards: the "identity collapse" that masking prevents (Batson & Royer 2019;
Noise2Same, Sec. 2, Eq. (1)–(2): without J-invariance the cross term
``−2⟨f(y) − x, y − x⟩`` rewards copying the noise). It exists to **demonstrate** that
failure; it is not a denoiser. Registered as ``n2s-unmasked``: Noise2Self with the
mask removed. Deterministic: it draws no random numbers.
"""
from __future__ import annotations

import torch

from .base import Batch, Method

__all__ = ["UnmaskedSelfSupervised"]


class UnmaskedSelfSupervised(Method):
    """Self-supervised training without a mask (a negative control: it learns the identity).

    Args:
        net: network mapping (N, C, H, W) → (N, C, H, W).

    ``requires = "single"``.
    """

    name = "n2s-unmasked"
    requires = "single"

    def loss(self, batch: Batch):
        """``mean (f(y) − y)²`` over all entries; logs ``mse``."""
        y = batch.noisy
        mse = torch.mean((self.net(y) - y) ** 2)
        return mse, {"mse": mse.detach()}
