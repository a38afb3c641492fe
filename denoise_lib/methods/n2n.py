"""Noise2Noise: training on pairs of independent noisy observations.

Loss (Lehtinen et al. 2018, Eq. 1–3 with L2): ``L_N2N(θ) = mean ‖f_θ(y) − y'‖²``
where ``y = x + n`` and ``y' = x + n'`` are two noisy observations of the same
clean ``x`` with independent, zero-mean noise. Book, Part 1, theorem
"N2N and N2C share their minimisers": ``L_N2N = L_N2C + mean E[n'²]`` for every f,
which is ``σ²`` for Gaussian noise.
"""
from __future__ import annotations

import torch

from .base import Batch, Method

__all__ = ["Noise2Noise"]


class Noise2Noise(Method):
    """Denoiser trained on pairs of noisy images of the same scene.

    Args:
        net: network mapping (N, C, H, W) → (N, C, H, W).

    ``requires = "pairs"``: the batch carries a second noisy observation
    ``batch.target``. The training loop swaps input and target at random per
    sample, since both observations are equally valid inputs.
    """

    name = "n2n"
    requires = "pairs"

    def loss(self, batch: Batch):
        if batch.target is None:
            raise ValueError("Noise2Noise needs a second noisy observation in the batch (batch.target)")
        mse = torch.mean((self.net(batch.noisy) - batch.target) ** 2)
        return mse, {"mse": mse.detach()}
