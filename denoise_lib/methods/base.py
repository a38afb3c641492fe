"""The shared interface of every learned denoising method.

A method is an ``nn.Module`` that owns a network (``self.net``, from
:mod:`denoise_lib.models`) and any extra learnable parameters, and implements two
things:

* :meth:`Method.loss` — the training objective on one :class:`Batch`, returning a
  scalar loss and a dict of detached scalar tensors to log;
* :meth:`Method.denoise` — inference on noisy images (no gradients, eval mode).

``Method.requires`` states which training data the method may see, and the single
training loop (:func:`denoise_lib.train.fit`) builds batches accordingly:

* ``"clean"`` — noisy inputs and their clean images (supervised, Noise2Clean);
* ``"pairs"`` — two independent noisy observations of each image (Noise2Noise);
* ``"single"`` — one noisy observation per image only (all self-supervised methods).

Self-supervised methods never receive clean images: the training loop does not
put them in the batch (COURSE.md §3).
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..data import Batch
from ..image import ImageError, as_image

__all__ = ["Batch", "Method"]


class Method(nn.Module):
    """Base class of the learned methods (see the module docstring).

    Args:
        net: the denoising network ``f_θ``; maps (N, C, H, W) to (N, C, H, W) unless a
            subclass documents otherwise.
    """

    name: ClassVar[str] = "method"
    requires: ClassVar[str] = "single"
    #: For ``requires == "pairs"``: where the pairs come from. ``"independent"`` — two
    #: independent noisy draws of the same still image (Noise2Noise); ``"moving"`` —
    #: two noisy frames of a moving scene, misaligned (Self2Align; built by
    #: :mod:`denoise_lib.motion`).
    pair_source: ClassVar[str] = "independent"
    #: True for methods fitted to each test image at inference (Deep Image Prior): they
    #: have no training set, and their fitting time counts per test image.
    per_image: ClassVar[bool] = False
    #: Constructor arguments that change only inference, not training (e.g. Laine19's
    #: ``output``): the harness trains once for registry names that differ only in these.
    inference_kwargs: ClassVar[tuple[str, ...]] = ()
    #: One line on the expected cost of a training step relative to Noise2Clean on the same
    #: network, printed by the harness next to the counted and measured ratios.
    cost_note: ClassVar[str] = "one forward/backward pass: 1× N2C"

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @property
    def channels(self) -> int | None:
        """Image channels the network expects (from ``net.in_channels`` when it has one)."""
        return getattr(self.net, "in_channels", None)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on one batch: ``(scalar tensor with grad, {name: detached scalar tensor})``.

        Logged values stay tensors so that the loop synchronises with the device only
        when it reports, not at every step.
        """
        raise NotImplementedError

    def predict(self, y: torch.Tensor) -> torch.Tensor:
        """The denoised estimate for a float32 NCHW batch on the model's device.

        Subclasses override this when inference differs from one forward pass
        (e.g. a posterior mean). Called by :meth:`denoise` under ``no_grad``.
        """
        return self.net(y)

    @torch.no_grad()
    def denoise(self, y, *, batch_size: int = 1) -> torch.Tensor:
        """Denoise noisy images.

        Args:
            y: noisy image(s), anything :func:`denoise_lib.image.as_image` accepts
                (uint8/uint16/float, HW/HWC/CHW/NCHW); values may leave [0, 1].
            batch_size: images per forward pass.

        Returns:
            float32 NCHW tensor on the CPU, same shape as the converted input, not clipped.

        Raises:
            ImageError: unusable input (NaN, wrong rank, wrong channel count for this
                network — gray input to an RGB network is replicated, RGB input to a
                gray network raises).
        """
        y = as_image(y, allow_range=True)
        c = self.channels
        if c is not None and y.shape[1] != c:
            if y.shape[1] == 1 and c == 3:
                y = y.expand(-1, 3, -1, -1)
            else:
                raise ImageError(
                    f"{self.name} was built for {c}-channel images, got {y.shape[1]} channels")
        was_training = self.training
        self.eval()
        device = next(iter(self.parameters()), torch.empty(0)).device
        try:
            out = [self.predict(y[i:i + batch_size].to(device)).float().cpu()
                   for i in range(0, y.shape[0], batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out)

    def extra_repr(self) -> str:
        return f"requires={self.requires!r}"
