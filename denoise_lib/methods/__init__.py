"""Learned denoising methods behind one interface (:class:`~denoise_lib.methods.base.Method`).

Each method lives in its own module named after it; networks live in
:mod:`denoise_lib.models`. :func:`build` creates a method with its default
network by name, importing only the module it needs.

The registry (:data:`REGISTRY`) maps each name to its module, class and settings;
the comparison harness accepts every registered name. ``requires`` says which
training data a method may see ("clean", "pairs" or "single").
"""
from __future__ import annotations

import importlib
import inspect

from .base import Batch, Method

__all__ = ["Batch", "Method", "REGISTRY", "build", "available", "method_class", "training_key"]

#: name → (module in this package, class, constructor keyword arguments).
#: One module per method; several names may share a class with different settings.
REGISTRY: dict[str, tuple[str, str, dict]] = {
    "n2c": ("n2c", "Noise2Clean", {}),
    "n2n": ("n2n", "Noise2Noise", {}),
    "n2v": ("n2v", "Noise2Void", {}),
    "n2s": ("n2s", "Noise2Self", {}),
    "n2s-unmasked": ("n2s_unmasked", "UnmaskedSelfSupervised", {}),
    # λ_inv = 2 of Theorem 1 holds on data normalised to unit variance; on [0, 1] data
    # the same weight is 2·std of the batch ("2std").
    "noise2same": ("noise2same", "Noise2Same", {"lambda_inv": "2std"}),
    # Laine et al. 2019 (blind-spot U-Net + Gaussian NLL); σ known from the `noise` argument.
    "laine19-mu": ("laine19", "Laine19", {"mode": "full", "output": "mu"}),
    "laine19-pme": ("laine19", "Laine19", {"mode": "full", "output": "pme"}),
    "laine19-percomp": ("laine19", "Laine19", {"mode": "per-component", "output": "pme"}),
    "laine19-l2": ("laine19", "Laine19", {"mode": "l2", "output": "mu"}),
    # Neighbor2Neighbor (Huang et al. 2021): random neighbour sub-sampler, γ ramped 0 → 2.
    "nb2nb": ("nb2nb", "Neighbor2Neighbor", {}),
    "nb2nb-fixed": ("nb2nb", "Neighbor2Neighbor", {"sampler": "fixed"}),
    # Self2Align (Wang et al. 2022): trains on misaligned pairs of noisy frames (pair_source "moving").
    "self2align": ("self2align", "Self2Align", {}),
    # SVID (Lin et al. 2021): self-verification with a stop-gradient target.
    "svid": ("svid", "SVID", {}),
    "svid-nostopgrad": ("svid", "SVID", {"stop_gradient": False}),
    # Deep Image Prior: fitted per test image (per_image = True), fixed iteration count.
    "dip": ("dip", "DeepImagePrior", {"input": "noise"}),
    "dip-y": ("dip", "DeepImagePrior", {"input": "noisy"}),
}


def available() -> list[str]:
    """Names accepted by :func:`build`."""
    return sorted(REGISTRY)


def method_class(name: str) -> type[Method]:
    """The :class:`Method` subclass registered under ``name`` (imported on demand).

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if name not in REGISTRY:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(available())}")
    module, cls, _ = REGISTRY[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def training_key(name: str) -> tuple:
    """What determines the training run of ``name``: its module, class and the constructor
    settings other than the class's ``inference_kwargs``. Two names with the same key train
    the same network the same way (e.g. ``laine19-mu`` and ``laine19-pme``).

    Raises:
        KeyError: unknown name.
    """
    cls = method_class(name)
    module, clsname, kw = REGISTRY[name]
    return (module, clsname, tuple(sorted((k, repr(v)) for k, v in kw.items() if k not in cls.inference_kwargs)))


def build(name: str, channels: int = 1, *, noise=None, patch_size: int | None = None, **kwargs) -> Method:
    """Create method ``name`` with its default network for ``channels`` (1 or 3).

    Args:
        name: a key of :data:`REGISTRY`.
        channels: image channels, 1 or 3.
        noise: the noise model of the data (a :class:`~denoise_lib.noise.NoiseModel` or
            spec string). It is passed to constructors that take a ``noise`` argument
            (methods that use a known noise level, e.g. σ for a posterior mean) and
            ignored by the others.
        patch_size: side of the training patches, when known. Passed to a
            ``default_net`` that takes it (the blind-spot network sizes its depth
            from it) and ignored otherwise.
        **kwargs: constructor arguments; they override the registry's settings.

    The default network is the Noise2Noise U-Net (:class:`denoise_lib.models.UNet`)
    unless the method class defines a static ``default_net(channels, **kwargs)``, which
    receives the same keyword arguments as the constructor.

    Raises:
        KeyError: unknown method name.
        ValueError: ``channels`` not 1 or 3.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    cls = method_class(name)
    kwargs = {**REGISTRY[name][2], **kwargs}
    if noise is not None and "noise" in inspect.signature(cls.__init__).parameters:
        from ..noise import parse_noise
        kwargs.setdefault("noise", parse_noise(noise))
    make_net = getattr(cls, "default_net", None)
    if make_net is None:
        from ..models import UNet
        net = UNet(in_channels=channels)
    else:
        hint = {"patch_size": patch_size} if patch_size is not None and \
            "patch_size" in inspect.signature(make_net).parameters else {}
        net = make_net(channels, **kwargs, **hint)
    return cls(net, **kwargs)
