"""J-invariant inference: Noise2Self's J-invariant version of any network.

Batson & Royer (2019), "Noise2Self: blind denoising by self-supervision", and the
``infer_full_image`` of their code's ``mask.py``. Notation: ``y`` is the **noisy**
image (book notation, :doc:`../book/00_notation`).

* :func:`j_invariant_predict` turns any callable ``f`` (float NCHW → same shape: an
  ``nn.Module``, a method's ``predict``, a lambda) into a J-invariant function for the
  partition of the image into ``grid²`` regular sub-grids. It does not change the
  train/eval mode of a module: call ``net.eval()`` first when it matters. Used by
  :class:`~denoise_lib.methods.n2s.Noise2Self` inference.

The measure D(f) of Noise2Same and its bound check are course material:
:mod:`denoise_lib.course.jinvariance`.
"""
from __future__ import annotations

from typing import Callable

import torch

from . import masks

__all__ = ["j_invariant_predict"]

Model = Callable[[torch.Tensor], torch.Tensor]


def _check_input(y) -> None:
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or not y.is_floating_point():
        raise TypeError("y must be a float NCHW tensor (convert with denoise_lib.image.as_image)")
    if y.numel() == 0:
        raise ValueError(f"y is empty: shape {tuple(y.shape)}")


def _call(f: Model, y: torch.Tensor) -> torch.Tensor:
    out = f(y)
    if not isinstance(out, torch.Tensor) or out.shape != y.shape:
        raise ValueError(f"the model must map NCHW to the same shape: input {tuple(y.shape)}, "
                         f"output {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return out


def j_invariant_predict(f: Model, y: torch.Tensor, grid: int = 4, replacement: str = "donut", *,
                        generator: torch.Generator | None = None, **options) -> torch.Tensor:
    """Noise2Self's J-invariant prediction: each pixel is predicted with itself masked.

    The image is partitioned into the ``grid²`` regular sub-grids
    ``J_{a,b} = {(i, j) : i ≡ a, j ≡ b (mod grid)}`` (:func:`denoise_lib.masks.grid_mask`).
    For every phase, the pixels of that phase are replaced (``replacement``, from
    :func:`denoise_lib.masks.replace`, which reads only unmasked pixels), ``f`` is run
    on the result, and its output is kept on that phase only:

        g(y)_J = f(y_{J^c})_J   for every J in the partition

    (Batson & Royer 2019: the J-invariant version of an arbitrary function, computed
    by their code's grid masker). ``g(y)_J`` then depends on ``y`` only through
    ``y_{J^c}``: ``g`` is J-invariant whatever ``f`` is.

    **Cost**: ``grid²`` forward passes of ``f`` (16 for the default grid of 4), each on
    the whole batch. Gradients flow when the caller does not disable them; wrap the
    call in ``torch.no_grad()`` for inference.

    Args:
        f: model, float (B, C, H, W) → (B, C, H, W).
        y: noisy batch, float (B, C, H, W), H, W ≥ 2 for the neighbour strategies.
        grid: sub-grid spacing ≥ 2.
        replacement: "donut" (default, deterministic), "zero", "ups", "random" or
            "gaussian"; the random ones draw from ``generator`` (required for them).
        **options: options of the strategy (e.g. ``kernel_size=3``).

    Returns:
        tensor of the shape, dtype and device of ``f``'s output.

    Raises:
        TypeError: ``y`` is not a float NCHW tensor, or a random strategy without a
            generator. ValueError: ``grid < 2``, an unknown strategy, or ``f`` changing
            the shape.
    """
    _check_input(y)
    masks.grid_mask(y.shape[:1] + y.shape[2:], grid, 0)  # validates grid before any forward pass
    out = None
    for phase in range(grid * grid):
        m = masks.grid_mask(y.shape, grid, phase, device=y.device)
        pred = _call(f, masks.replace(y, m, replacement, generator=generator, **options))
        out = pred * m if out is None else torch.where(m, pred, out)
    return out
