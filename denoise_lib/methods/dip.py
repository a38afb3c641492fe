"""Deep Image Prior: fit a network to one noisy image and stop early.

Ulyanov, Vedaldi & Lempitsky (2018), "Deep image prior", in the two forms written
down by the SVID paper (Lin et al. 2021, §1, "their Eq." below). Book: Part 8,
``book/08_deep_image_prior.md``. Notation: ``y`` noisy, ``x`` clean, ``f_θ`` the network.

* ``input="noise"`` — their Eq. (3): ``min_θ ‖f_θ(z) − y‖²`` with a **fixed** random
  input ``z``: ``z_channels`` = 32 channels (as Ulyanov et al.) of i.i.d. ``U(0, z_scale)``
  values, the size of ``y``. Ulyanov et al. use ``z_scale`` = 0.1 with a network that
  has batch normalisation; the course U-Net has none, and with 0.1 its fit stalls for
  hundreds of iterations, so the default here is ``z_scale`` = 1.
* ``input="noisy"`` — their Eq. (4): ``min_θ ‖f_θ(y) − y‖²``, the noisy image itself
  as input.

Both objectives are minimised by a network that reproduces ``y`` exactly, noise
included. What denoises is the **trajectory**: a convolutional network fits the
image's structure long before it fits the noise, so the output passes close to ``x``
and then drifts back to ``y``. The number of iterations is the regulariser (early
stopping); without a clean reference it must be fixed in advance (``iterations``).

DIP has no training set (``per_image = True``): every call of :meth:`DeepImagePrior.denoise`
fits a **fresh copy** of the network, from the same initial weights, to each image.
This is inference, not training, so it does not go through
:func:`denoise_lib.train.fit` (which trains one network on a data set); the
per-image loop is :meth:`DeepImagePrior.fit_image` (Adam, constant learning rate,
mean squared error over all pixels, as Ulyanov et al.; their learning rate 0.01 made the
course U-Net diverge, so the default is 10⁻³).

Default iteration counts (``iterations=None``): 600 for the random input and 100 for the
noisy input, chosen on **training** images, never on a test set: PSNR curves of the
default network on BSD400 images 0 and 1 (180 × 180, σ = 25, PSNR recorded every 20
iterations) peaked at 640 and 620 iterations for the random input (26.42 and 28.84 dB)
and at 100 for the noisy input (27.42 and 28.92 dB; noisy ≈ 20.3 dB). The best count
depends on the image, its size, the noise and the network. On 256 × 256 grey crops of
BSD300-train images 0 and 1, the random-input fit sat at 18–21 dB until about 900
iterations and peaked only after 1000 (25.8 dB at 1180; 21.4 dB at 1000, with a
transient divergence at 1100), so on images of that size the default stops too early.
The Part 8 notebook measures the curves.

Default network (:meth:`DeepImagePrior.default_net`): the course U-Net
(:class:`denoise_lib.models.UNet`) with 16 encoder features and depth 4
(about 45 k parameters for gray input), instead of Ulyanov et al.'s 128-channel
encoder–decoder: a CPU must fit it hundreds of times per test set. Its output is
the image itself (not a residual), as in Ulyanov et al.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import metrics
from ..image import ImageError, as_image
from .base import Batch, Method

__all__ = ["DeepImagePrior", "FitHistory", "INPUTS", "DEFAULT_ITERATIONS", "random_input"]

INPUTS = ("noise", "noisy")
#: Iterations per image when ``iterations=None`` (module docstring).
DEFAULT_ITERATIONS = {"noise": 600, "noisy": 100}


def random_input(shape: tuple[int, int, int, int], *, scale: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The fixed random input ``z`` of their Eq. (3): i.i.d. ``U(0, scale)`` values.

    Args:
        shape: ``(N, z_channels, H, W)``.
        scale: upper end of the uniform distribution (Ulyanov et al. use 0.1 with batch
            normalisation; :class:`DeepImagePrior` defaults to 1).
        generator: the source of randomness (CPU generator); None uses the global RNG.

    Returns:
        float32 tensor of ``shape`` on the CPU.
    """
    return torch.rand(shape, generator=generator, dtype=torch.float32) * scale


@dataclass
class FitHistory:
    """What :meth:`DeepImagePrior.fit_image` recorded.

    Attributes:
        iterations: recorded iteration numbers, strictly increasing; iteration ``t`` is
            the network after ``t`` Adam updates (0 = the initial network).
        loss: the loss ``mean (f_θ(input) − y)²`` at each recorded iteration.
        psnr: PSNR (dB, :func:`denoise_lib.metrics.psnr`) of the output against the clean
            reference at each recorded iteration; empty when no reference was given.
        best_iteration, best_psnr: the recorded iteration with the highest PSNR (None
            without a reference). An **oracle**: it needs the clean image.
        best_output: the output at ``best_iteration`` (CPU, float32 NCHW), or None.
        seconds: wall time of the fit.
    """

    iterations: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    best_iteration: int | None = None
    best_psnr: float | None = None
    best_output: torch.Tensor | None = None
    seconds: float = 0.0


class DeepImagePrior(Method):
    """Deep Image Prior (Ulyanov et al. 2018), their Eq. (3) (random input) or Eq. (4) (noisy input).

    Args:
        net: the network to fit, in its **initial** state (it is copied for every
            image and never modified). Its input has ``z_channels`` channels for
            ``input="noise"`` and the image's channels for ``input="noisy"``; its
            output has the image's channels (``net.out_channels`` when defined).
        input: ``"noise"`` (fixed random ``z``, Eq. 3) or ``"noisy"`` (``y``, Eq. 4).
        iterations: Adam updates per image (the early-stopping time); default
            :data:`DEFAULT_ITERATIONS` of the input type (400 for ``"noise"``, 80 for ``"noisy"``).
        lr: Adam learning rate (default 10⁻³).
        z_channels: channels of ``z`` for ``input="noise"`` (default 32, Ulyanov et al.'s).
        z_scale: ``z`` ~ U(0, z_scale) (default 1; see the module docstring).
        seed: seeds the random input ``z`` of every image (the same ``z`` for every image
            of the same size), so that :meth:`denoise` is reproducible.
        features, depth: size of :meth:`default_net`; accepted here so that
            ``build(name, channels, features=…, depth=…)`` works, otherwise unused.

    ``name`` is ``"dip"`` (random input) or ``"dip-y"`` (noisy input), the registry names.

    ``per_image = True``; ``requires = "single"`` (it only ever sees the noisy image).

    Raises:
        ValueError: unknown ``input``, ``iterations < 0``, ``lr <= 0``, ``z_channels < 1``,
            or a network whose input channels do not match ``input``/``z_channels``.
    """

    name = "dip"
    requires = "single"
    per_image = True

    def __init__(self, net: nn.Module, *, input: str = "noise", iterations: int | None = None, lr: float = 1e-3,
                 z_channels: int = 32, z_scale: float = 1.0, seed: int = 0,
                 features: int | None = None, depth: int | None = None):
        super().__init__(net)
        if input not in INPUTS:
            raise ValueError(f"DeepImagePrior input must be one of {INPUTS}, got {input!r}")
        if iterations is None:
            iterations = DEFAULT_ITERATIONS[input]
        if int(iterations) != iterations or iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if int(z_channels) != z_channels or z_channels < 1:
            raise ValueError(f"z_channels must be a positive integer, got {z_channels!r}")
        if not z_scale > 0:
            raise ValueError(f"z_scale must be positive, got {z_scale!r}")
        self.input, self.iterations, self.lr = input, int(iterations), float(lr)
        self.z_channels, self.z_scale, self.seed = int(z_channels), float(z_scale), int(seed)
        self.name = "dip" if input == "noise" else "dip-y"
        net_in = getattr(net, "in_channels", None)
        net_out = getattr(net, "out_channels", None)
        if input == "noise" and net_in is not None and net_in != self.z_channels:
            raise ValueError(f"input='noise' feeds z with {self.z_channels} channels, but the network "
                             f"takes {net_in}; build it with in_channels={self.z_channels}")
        if input == "noisy" and net_in is not None and net_out is not None and net_in != net_out:
            raise ValueError(f"input='noisy' feeds y to the network: its input ({net_in}) and output "
                             f"({net_out}) channels must agree")

    @property
    def channels(self) -> int | None:
        """Image channels (the network's output channels)."""
        return getattr(self.net, "out_channels", None) or getattr(self.net, "in_channels", None)

    @staticmethod
    def default_net(channels: int, *, input: str = "noise", z_channels: int = 32, features: int | None = None,
                    depth: int | None = None, **_ignored) -> nn.Module:
        """A small course U-Net (16 features, depth 4; see the module docstring).

        Args:
            channels: image channels (1 or 3).
            input: as for the constructor; decides the input channels.
            z_channels: input channels for ``input="noise"``.
            features, depth: U-Net width and number of poolings.
        """
        from ..models import UNet

        cin = z_channels if input == "noise" else channels
        return UNet(in_channels=cin, out_channels=channels, features=features or 16, depth=depth or 4)

    # ------------------------------------------------------------------ fitting
    def network_input(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The input of the fit for noisy image(s) ``y`` (N, C, H, W): ``z`` or ``y`` itself.

        ``z`` is drawn from ``generator`` (default: a generator seeded with ``seed``).
        """
        if self.input == "noisy":
            return y
        g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        n, _, h, w = y.shape
        return random_input((n, self.z_channels, h, w), scale=self.z_scale, generator=g).to(y.device)

    def _check_image(self, y) -> torch.Tensor:
        y = as_image(y, allow_range=True)
        c = self.channels
        if c is not None and y.shape[1] != c:
            if y.shape[1] == 1 and c == 3:
                y = y.expand(-1, 3, -1, -1).contiguous()
            else:
                raise ImageError(f"{self.name} was built for {c}-channel images, got {y.shape[1]} channels")
        return y

    def fit_image(self, y, *, iterations: int | None = None, clean=None, record_every: int = 10,
                  generator: torch.Generator | None = None, lr: float | None = None,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, FitHistory]:
        """Fit a fresh copy of the network to one noisy image; return its output and the history.

        Minimises ``mean (f_θ(input) − y)²`` (their Eq. 3 or 4; the mean instead of the
        sum only rescales the step) with Adam at a constant learning rate, from the
        initial weights of ``self.net`` (which is not modified).

        Args:
            y: one noisy image, anything :func:`denoise_lib.image.as_image` accepts
                (values may leave [0, 1]); a batch of several images raises.
            iterations: Adam updates (default ``self.iterations``).
            clean: the clean reference, same shape as ``y`` (optional). Only used to
                record the PSNR of the output along the way; never in the loss.
            record_every: record the loss (and PSNR) every this many iterations; the
                first (0) and last iteration are always recorded.
            generator: source of ``z`` for ``input="noise"`` (default: seeded with ``seed``).
            lr: Adam learning rate (default ``self.lr``).
            device: where to fit (default: the device of ``self.net``).

        Returns:
            ``(output, history)``: the output of the network after ``iterations``
            updates (float32 NCHW on the CPU, same shape as ``y``, not clipped), and a
            :class:`FitHistory`.

        Raises:
            ImageError: unusable ``y`` or ``clean`` (NaN, wrong channels, shapes differ,
                several images).
            ValueError: ``iterations < 0`` or ``record_every < 1``.
        """
        import time

        y = self._check_image(y)
        if y.shape[0] != 1:
            raise ImageError(f"fit_image fits one image at a time, got a batch of {y.shape[0]}")
        iterations = self.iterations if iterations is None else iterations
        if int(iterations) != iterations or iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
        if int(record_every) != record_every or record_every < 1:
            raise ValueError(f"record_every must be a positive integer, got {record_every!r}")
        if clean is not None:
            clean = as_image(clean, channels=y.shape[1])
            if clean.shape != y.shape:
                raise ImageError(f"clean reference shape {tuple(clean.shape)} differs from y {tuple(y.shape)}")
        device = torch.device(device) if device is not None else \
            next(iter(self.net.parameters()), torch.empty(0)).device
        net = copy.deepcopy(self.net).to(device).train()
        target = y.to(device)
        inp = self.network_input(target, generator)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr if lr is None else float(lr))
        hist = FitHistory()
        t0 = time.perf_counter()
        out = None
        for t in range(int(iterations) + 1):
            last = t == iterations
            with torch.set_grad_enabled(not last):
                out = net(inp)
                loss = torch.mean((out - target) ** 2)
            if t % record_every == 0 or last:
                hist.iterations.append(t)
                hist.loss.append(float(loss.detach()))
                if clean is not None:
                    p = metrics.psnr(out.detach().cpu(), clean)
                    hist.psnr.append(p)
                    if hist.best_psnr is None or p > hist.best_psnr:
                        hist.best_iteration, hist.best_psnr = t, p
                        hist.best_output = out.detach().float().cpu().clone()
            if last:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        hist.seconds = time.perf_counter() - t0
        return out.detach().float().cpu(), hist

    def denoise(self, y, *, batch_size: int = 1) -> torch.Tensor:  # noqa: ARG002 (one image at a time)
        """Denoise each image by fitting a fresh copy of the network for ``iterations`` updates.

        Args:
            y: noisy image(s), anything :func:`denoise_lib.image.as_image` accepts.
            batch_size: ignored (DIP fits one image at a time); kept for the interface.

        Returns:
            float32 NCHW tensor on the CPU, same shape as the (converted) input, not clipped.

        Raises:
            ImageError: as :meth:`fit_image`.
        """
        y = self._check_image(y)
        return torch.cat([self.fit_image(y[i:i + 1], record_every=max(self.iterations, 1))[0]
                          for i in range(y.shape[0])])

    def predict(self, y: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`denoise` (the fit needs gradients, so there is no single forward pass)."""
        return self.denoise(y).to(y.device)

    def loss(self, batch: Batch):
        """DIP has no training set (``per_image = True``); there is nothing to train."""
        raise RuntimeError("DeepImagePrior is fitted per test image (per_image = True): call denoise() or "
                           "fit_image(), not the training loop")

    def extra_repr(self) -> str:
        z = f", z_channels={self.z_channels}, z_scale={self.z_scale:g}" if self.input == "noise" else ""
        return f"input={self.input!r}, iterations={self.iterations}, lr={self.lr:g}{z}, seed={self.seed}"
