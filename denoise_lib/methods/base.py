"""The shared interface of every denoising method: :class:`Method` and :class:`PerImageMethod`.

Both are ``nn.Module`` subclasses of :class:`Denoiser`, which owns the network
(``self.net``, from :mod:`denoise_lib.models`), records the constructor's settings
(:attr:`Denoiser.config`, saved in checkpoints and model files) and implements
:meth:`Denoiser.denoise` (inference on images of any size, no gradients).

* :class:`Method` — trained once on a training set by the one training loop
  (:func:`denoise_lib.train.fit`), then applied to new images. A method file declares
  ``requires`` (the data it may see: ``"clean"``, ``"pairs"`` or ``"single"``),
  :meth:`Method.training_set` (how the fixed training set is made from clean images in
  a comparison; override it when the data are special, e.g. moving frames) and
  :meth:`Method.loss`. All randomness of a loss comes from ``batch.generator``.
* :class:`PerImageMethod` — fitted afresh to every test image (Deep Image Prior): it
  has no training set and no ``loss``; it implements :meth:`PerImageMethod.fit_image`.

Self-supervised methods never receive clean images: the training loop passes only the
view of the training set that ``requires`` allows.
"""
from __future__ import annotations

import functools
import inspect
from typing import ClassVar

import torch
from torch import nn

from ..data import Batch, TrainingSet
from ..image import ImageError, as_image

__all__ = ["Batch", "Denoiser", "Method", "PerImageMethod", "plain_config"]

#: what the training data hold, by ``requires`` (used in messages and by the harness).
DATA_NOTES = {"single": "one fixed noisy draw per image", "pairs": "two independent noisy draws per image",
              "clean": "noisy draws and their clean images"}


def plain_config(value):
    """A JSON-ready, comparable form of a constructor argument (noise models by their spec)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain_config(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_config(v) for k, v in value.items()}
    spec = getattr(value, "spec", None)
    if isinstance(spec, str):
        return spec
    if isinstance(value, nn.Module):
        return f"<{type(value).__name__}>"
    return repr(value)


class Denoiser(nn.Module):
    """What every method shares: a network, its recorded settings and inference.

    Args:
        net: the denoising network ``f_θ``; maps (N, C, H, W) to (N, C, H, W) unless a
            subclass documents otherwise.

    Subclasses' constructors are wrapped so that :attr:`config` holds the arguments of
    the outermost constructor call (all but ``net``, defaults filled in).
    """

    #: the registry name; :func:`denoise_lib.methods.build` sets it on each instance.
    name: str = "method"
    #: One line on the expected cost of a training step relative to Noise2Clean on the same
    #: network, printed by the harness next to the counted and measured ratios.
    cost_note: ClassVar[str] = "one forward/backward pass: 1× N2C"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        sig = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            depth = self.__dict__.get("_init_depth", 0)
            object.__setattr__(self, "_init_depth", depth + 1)
            try:
                init(self, *args, **kw)
            finally:
                object.__setattr__(self, "_init_depth", depth)
            if depth == 0:
                bound = sig.bind(self, *args, **kw)
                bound.apply_defaults()
                object.__setattr__(self, "_config", {
                    k: plain_config(v) for k, v in bound.arguments.items()
                    if k not in ("self", "net") and sig.parameters[k].kind not in (
                        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)})

        cls.__init__ = recording_init

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @property
    def config(self) -> dict:
        """The constructor's settings (JSON-ready; noise models as spec strings)."""
        return dict(self.__dict__.get("_config", {}))

    @property
    def channels(self) -> int | None:
        """Image channels the network expects (from ``net.in_channels`` when it has one)."""
        return getattr(self.net, "in_channels", None)

    @classmethod
    def default_net(cls, channels: int, settings: dict, *, patch_size: int | None = None,
                    **net_kwargs) -> nn.Module:
        """The network :func:`denoise_lib.methods.build` creates for this method.

        Args:
            channels: image channels (1 or 3).
            settings: the constructor arguments the method will get (read only; e.g.
                Laine19's ``mode`` decides its output channels).
            patch_size: side of the training patches when known (the blind-spot network
                sizes its depth from it); ignored here.
            **net_kwargs: network arguments (e.g. ``features``, ``depth``).

        Default: the Noise2Noise U-Net (:class:`denoise_lib.models.UNet`).
        """
        from ..models import UNet

        return UNet(in_channels=channels, **net_kwargs)

    def _device(self) -> torch.device:
        return next(iter(self.parameters()), torch.empty(0)).device

    def _as_input(self, y) -> torch.Tensor:
        """``y`` as a float32 NCHW tensor with this network's channel count (gray → RGB replicated)."""
        y = as_image(y, allow_range=True)
        c = self.channels
        if c is not None and y.shape[1] != c:
            if y.shape[1] == 1 and c == 3:
                y = y.expand(-1, 3, -1, -1).contiguous()
            else:
                raise ImageError(
                    f"{self.name} was built for {c}-channel images, got {y.shape[1]} channels")
        return y

    def denoise(self, y, *, batch_size: int = 1) -> torch.Tensor:
        """Denoise noisy images.

        Args:
            y: noisy image(s), anything :func:`denoise_lib.image.as_image` accepts;
                values may leave [0, 1].
            batch_size: images per forward pass (an integer ≥ 1).

        Returns:
            float32 NCHW tensor on the CPU, same shape as the converted input, not clipped.

        Raises:
            ImageError: unusable input (NaN, wrong rank, wrong channel count for this
                network — gray input to an RGB network is replicated, RGB input to a
                gray network raises).
            ValueError: ``batch_size`` not an integer ≥ 1.
        """
        raise NotImplementedError

    @staticmethod
    def _check_batch_size(batch_size) -> int:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
        return batch_size


class Method(Denoiser):
    """A method trained on a training set by :func:`denoise_lib.train.fit` (module docstring).

    A method file declares:

    * ``requires`` — ``"clean"`` (noisy inputs and their clean images, Noise2Clean),
      ``"pairs"`` (two noisy observations of each scene, Noise2Noise) or ``"single"``
      (one noisy observation per image: every self-supervised method);
    * :meth:`training_set` — only when its data are not the default for ``requires``;
    * :meth:`loss` — the objective on one :class:`Batch`, drawing all randomness from
      ``batch.generator``, with no host round trip (no ``.item()``, ``.cpu()``, NumPy);
    * optionally :meth:`predict` (inference other than one forward pass),
      :meth:`default_net`, ``inference_kwargs`` and ``cost_note``.
    """

    requires: ClassVar[str] = "single"
    #: Constructor arguments that change only inference, not training (e.g. Laine19's
    #: ``output``): the harness trains once for registry names that differ only in these.
    inference_kwargs: ClassVar[tuple[str, ...]] = ()
    #: What :meth:`training_set` builds, in words (printed by the harness).
    data_note: ClassVar[str | None] = None

    @classmethod
    def training_set(cls, images: list[torch.Tensor], noise, *, seed: int = 0) -> TrainingSet:
        """The fixed training set this method trains on, made from clean images.

        The noise is drawn once (one draw per image for ``"single"``, two independent
        draws for ``"pairs"``, a draw and its clean image for ``"clean"``), so a
        self-supervised method never sees clean images nor fresh noise.

        Args:
            images: list of (1, C, H, W) float32 clean images in [0, 1].
            noise: a :class:`~denoise_lib.noise.NoiseModel` or spec string.
            seed: seeds the noise draws.

        Raises:
            ValueError / ImageError: as :meth:`denoise_lib.data.TrainingSet.from_clean`.
        """
        return TrainingSet.from_clean(images, noise, kind=cls.requires, seed=seed)

    @classmethod
    def describe_data(cls) -> str:
        """One line: what the training data of this method are."""
        return cls.data_note or DATA_NOTES[cls.requires]

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        """Training loss on one batch: ``(scalar tensor with grad, {name: detached scalar tensor or float})``.

        Logged values stay tensors (or Python floats for host-side schedules), so that
        the loop synchronises with the device only when it reports, not at every step.
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
        """Denoise noisy images with :meth:`predict` (see :meth:`Denoiser.denoise`)."""
        batch_size = self._check_batch_size(batch_size)
        y = self._as_input(y)
        was_training = self.training
        self.eval()
        device = self._device()
        try:
            out = [self.predict(y[i:i + batch_size].to(device)).float().cpu()
                   for i in range(0, y.shape[0], batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in {"requires": self.requires, **self.config}.items())


class PerImageMethod(Denoiser):
    """A method fitted afresh to each noisy image at inference (Deep Image Prior).

    It has no training set and does not go through :func:`denoise_lib.train.fit`; the
    comparison harness counts its fitting time per test image. Subclasses implement
    :meth:`fit_image`; :meth:`denoise` fits every image of a batch in turn.
    """

    def fit_image(self, y, **options) -> tuple[torch.Tensor, object]:
        """Fit to one noisy image; return ``(output (1, C, H, W) float32 on the CPU, history)``."""
        raise NotImplementedError

    def denoise(self, y, *, batch_size: int = 1) -> torch.Tensor:
        """Fit each image of ``y`` separately and return the outputs (see :meth:`Denoiser.denoise`).

        ``batch_size`` is checked but has no effect: images are fitted one at a time.
        """
        self._check_batch_size(batch_size)
        y = self._as_input(y)
        return torch.cat([self.fit_image(y[i:i + 1])[0] for i in range(y.shape[0])])

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())
