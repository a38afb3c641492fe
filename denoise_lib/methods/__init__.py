"""Learned denoising methods behind one interface (:class:`~denoise_lib.methods.base.Method`).

Each method lives in its own module named after it; networks live in
:mod:`denoise_lib.models`. :func:`build` creates a method with its default
network by name, importing only the module it needs.

The registry (:data:`REGISTRY`) maps each name to its module, class and settings;
the comparison harness accepts every registered name. A new method is one module
(a :class:`Method` or :class:`PerImageMethod` subclass) plus one line here.
"""
from __future__ import annotations

import importlib
import inspect

import torch

from .base import Batch, Denoiser, Method, PerImageMethod

__all__ = ["Batch", "Denoiser", "Method", "PerImageMethod", "REGISTRY", "build", "available", "method_class", "training_key"]

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
    # Self2Align (Wang et al. 2022): trains on misaligned pairs of noisy frames (its training_set).
    "self2align": ("self2align", "Self2Align", {}),
    # SVID (Lin et al. 2021): self-verification with a stop-gradient target.
    "svid": ("svid", "SVID", {}),
    "svid-nostopgrad": ("svid", "SVID", {"stop_gradient": False}),
    # Deep Image Prior: a PerImageMethod, fitted to each test image for a fixed iteration count.
    "dip": ("dip", "DeepImagePrior", {"input": "noise"}),
    "dip-y": ("dip", "DeepImagePrior", {"input": "noisy"}),
}


def available() -> list[str]:
    """Names accepted by :func:`build`."""
    return sorted(REGISTRY)


def method_class(name: str) -> type[Denoiser]:
    """The :class:`Method` or :class:`PerImageMethod` subclass registered under ``name`` (imported on demand).

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
    skip = getattr(cls, "inference_kwargs", ())
    return (module, clsname, tuple(sorted((k, repr(v)) for k, v in kw.items() if k not in skip)))


def build(name: str, channels: int = 1, *, noise=None, patch_size: int | None = None,
          net: dict | None = None, seed: int = 0, **kwargs) -> Denoiser:
    """Create method ``name`` with its default network for ``channels`` (1 or 3).

    Args:
        name: a key of :data:`REGISTRY`; it becomes the instance's ``name``.
        channels: image channels, 1 or 3.
        noise: the noise model of the data (a :class:`~denoise_lib.noise.NoiseModel` or
            spec string). It is passed to constructors that take a ``noise`` argument
            (methods that use a known noise level, e.g. σ for a posterior mean) and
            ignored by the others.
        patch_size: side of the training patches, when known; passed to the class's
            ``default_net`` (the blind-spot network sizes its depth from it).
        net: keyword arguments of the network (e.g. ``{"features": 24, "depth": 4}``),
            passed to ``default_net`` only.
        seed: seeds the initial weights (drawn inside :func:`torch.random.fork_rng`, so
            the caller's global RNG is left as it was).
        **kwargs: method (constructor) arguments; they override the registry's settings.

    Raises:
        KeyError: unknown method name.
        ValueError: ``channels`` not 1 or 3, or bad method/network arguments.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    cls = method_class(name)
    settings = {**REGISTRY[name][2], **kwargs}
    if noise is not None and "noise" in inspect.signature(cls.__init__).parameters:
        from ..noise import parse_noise
        settings.setdefault("noise", parse_noise(noise))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            network = cls.default_net(channels, dict(settings), patch_size=patch_size, **(net or {}))
        except TypeError as e:
            raise ValueError(f"bad network arguments {net!r} for {name}: {e}") from None
        method = cls(network, **settings)
    method.name = name
    return method
