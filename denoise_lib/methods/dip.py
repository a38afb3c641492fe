"""Deep Image Prior: fit a network to one noisy image and stop early.

Ulyanov, Vedaldi & Lempitsky (2018), "Deep image prior", in the two forms written
down by the SVID paper (Lin et al. 2021, §1, "their Eq." below). Book: Part 8.
Notation: ``y`` noisy, ``x`` clean, ``f_θ`` the network.

* ``input="noise"`` — their Eq. (3): ``min_θ ‖f_θ(z) − y‖²`` with a **fixed** random
  input ``z``: ``z_channels`` = 32 channels (as Ulyanov et al.) of i.i.d. ``U(0, z_scale)``
  values, the size of ``y``. Ulyanov et al. use ``z_scale`` = 0.1 with a network that
  has batch normalisation; the course U-Net has none, and the library's default is
  ``z_scale`` = 1 (pass 0.1 to compare).
* ``input="noisy"`` — their Eq. (4): ``min_θ ‖f_θ(y) − y‖²``, the noisy image itself
  as input.

Both objectives are minimised by a network that reproduces ``y`` exactly, noise
included. What denoises is the **trajectory**: a convolutional network fits the
image's structure long before it fits the noise, so the output passes close to ``x``
and then drifts back to ``y``. The number of iterations is the regulariser (early
stopping); without a clean reference it must be fixed in advance (``iterations``).

DIP has no training set: it is a :class:`~denoise_lib.methods.base.PerImageMethod`.
Every call of :meth:`DeepImagePrior.denoise` fits a **fresh copy** of the network, from
the same initial weights, to each image (:meth:`DeepImagePrior.fit_image`: Adam,
constant learning rate, mean squared error over all pixels, as Ulyanov et al.). The
default learning rate is 10⁻³ (Ulyanov et al. use 0.01 with batch normalisation).

Default iteration counts (``iterations=None``, :data:`DEFAULT_ITERATIONS`): 600 for the
random input and 100 for the noisy input, fixed values chosen on **training** images
(BSD400, σ = 25), never on a test set. The best count depends on the image, its size,
the noise and the network; the Part 8 notebook measures the PSNR curve of one test
image.

Default network (:meth:`DeepImagePrior.default_net`): the course U-Net
(:class:`denoise_lib.models.UNet`) with 16 encoder features and depth 4, instead of
Ulyanov et al.'s 128-channel encoder–decoder, so that a CPU can fit it once per test
image. Its output is the image itself (not a residual), as in Ulyanov et al.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import metrics
from ..image import ImageError, as_image
from .base import PerImageMethod

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
        outputs: iteration → output (CPU, float32 NCHW) at the recorded iterations
            asked for with ``fit_image(keep_outputs=…)``; empty otherwise.
        seconds: wall time of the fit.
    """

    iterations: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    best_iteration: int | None = None
    best_psnr: float | None = None
    best_output: torch.Tensor | None = None
    outputs: dict[int, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0


class DeepImagePrior(PerImageMethod):
    """Deep Image Prior (Ulyanov et al. 2018), their Eq. (3) (random input) or Eq. (4) (noisy input).

    Args:
        net: the network to fit, in its **initial** state (it is copied for every
            image and never modified). Its input has ``z_channels`` channels for
            ``input="noise"`` and the image's channels for ``input="noisy"``; its
            output has the image's channels (``net.out_channels`` when defined).
        input: ``"noise"`` (fixed random ``z``, Eq. 3) or ``"noisy"`` (``y``, Eq. 4).
        iterations: Adam updates per image (the early-stopping time); default
            :data:`DEFAULT_ITERATIONS` of the input type (600 for ``"noise"``, 100 for ``"noisy"``).
        lr: Adam learning rate (default 10⁻³).
        z_channels: channels of ``z`` for ``input="noise"`` (default 32, Ulyanov et al.'s).
        z_scale: ``z`` ~ U(0, z_scale) (default 1; see the module docstring).
        seed: seeds the random input ``z`` of every image (the same ``z`` for every image
            of the same size), so that :meth:`denoise` is reproducible.

    It only ever sees the noisy image it denoises.

    Raises:
        ValueError: unknown ``input``, ``iterations < 0``, ``lr <= 0``, ``z_channels < 1``,
            or a network whose input channels do not match ``input``/``z_channels``.
    """

    name = "dip"

    def __init__(self, net: nn.Module, *, input: str = "noise", iterations: int | None = None, lr: float = 1e-3,
                 z_channels: int = 32, z_scale: float = 1.0, seed: int = 0):
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

    @classmethod
    def default_net(cls, channels: int, settings: dict, *, patch_size: int | None = None,
                    features: int = 16, depth: int = 4) -> nn.Module:
        """A small course U-Net (16 features, depth 4; see the module docstring).

        Args:
            channels: image channels (1 or 3), the network's output channels.
            settings: the constructor arguments; ``input`` (default ``"noise"``) and
                ``z_channels`` (default 32) decide the input channels.
            patch_size: ignored (DIP fits whole images).
            features, depth: U-Net width and number of poolings.
        """
        from ..models import UNet

        cin = int(settings.get("z_channels", 32)) if settings.get("input", "noise") == "noise" else channels
        return UNet(in_channels=cin, out_channels=channels, features=features, depth=depth)

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

    def fit_image(self, y, *, iterations: int | None = None, clean=None, record_every: int = 10,
                  generator: torch.Generator | None = None, lr: float | None = None,
                  device: torch.device | str | None = None,
                  keep_outputs: bool | int = False) -> tuple[torch.Tensor, FitHistory]:
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
            keep_outputs: keep the output at recorded iterations in ``history.outputs``
                (for the iteration slider of the Part 8 notebook): ``True`` at every
                recorded iteration, an integer ``k`` at every ``k``-th recorded one (the
                first, the last and, with ``clean``, the best always). Memory: one image per
                kept iteration.

        Returns:
            ``(output, history)``: the output of the network after ``iterations``
            updates (float32 NCHW on the CPU, same shape as ``y``, not clipped), and a
            :class:`FitHistory`.

        Raises:
            ImageError: unusable ``y`` or ``clean`` (NaN, wrong channels, shapes differ,
                several images).
            ValueError: ``iterations < 0``, ``record_every < 1`` or ``keep_outputs < 0``.
        """
        import time

        y = self._as_input(y)
        if y.shape[0] != 1:
            raise ImageError(f"fit_image fits one image at a time, got a batch of {y.shape[0]}")
        iterations = self.iterations if iterations is None else iterations
        if int(iterations) != iterations or iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
        if int(record_every) != record_every or record_every < 1:
            raise ValueError(f"record_every must be a positive integer, got {record_every!r}")
        keep_every = int(keep_outputs)           # True → 1, False → 0
        if keep_every != keep_outputs or keep_every < 0:
            raise ValueError(f"keep_outputs must be a bool or a non-negative integer, got {keep_outputs!r}")
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
                if keep_every and (len(hist.iterations) % keep_every == 0 or last):
                    hist.outputs[t] = out.detach().float().cpu().clone()
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
        if keep_every and hist.best_output is not None:
            hist.outputs[hist.best_iteration] = hist.best_output
        hist.seconds = time.perf_counter() - t0
        return out.detach().float().cpu(), hist

    def denoise(self, y, *, batch_size: int = 1) -> torch.Tensor:
        """Fit a fresh copy of the network to each image for ``iterations`` updates (no history kept).

        Args:
            y: noisy image(s), anything :func:`denoise_lib.image.as_image` accepts.
            batch_size: checked, no effect (one image is fitted at a time).

        Returns:
            float32 NCHW tensor on the CPU, same shape as the (converted) input, not clipped.

        Raises:
            ImageError: as :meth:`fit_image`.
            ValueError: ``batch_size`` not an integer ≥ 1.
        """
        self._check_batch_size(batch_size)
        y = self._as_input(y)
        every = max(self.iterations, 1)     # record only the first and last iterations
        return torch.cat([self.fit_image(y[i:i + 1], record_every=every)[0] for i in range(y.shape[0])])

    def extra_repr(self) -> str:
        z = f", z_channels={self.z_channels}, z_scale={self.z_scale:g}" if self.input == "noise" else ""
        return f"input={self.input!r}, iterations={self.iterations}, lr={self.lr:g}{z}, seed={self.seed}"
