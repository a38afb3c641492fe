"""Self2Align: Noise2Noise on misaligned noisy frames, aligned by a network, with an SSIM-driven sampler.

Wang (2022), "Self2Align: a self-supervised denoising framework for single-scene
images", Sec. 3.3–4.2; book, Part 6 (:doc:`../book/06_self2align_theory`). No public
code exists; this is an implementation from the paper. The training data are pairs of
noisy frames of a moving scene (``requires = "pairs"``; :meth:`Self2Align.training_set`
simulates them with :func:`denoise_lib.data.motion.misaligned_pairs`).

One training step on a batch (``batch.noisy = y₁``, the reference frame; ``batch.target
= y₂``, the misaligned frame):

1. **Alignment** (Sec. 3.3–4.1). The alignment network
   (:class:`~denoise_lib.models.align.AlignNet`) predicts a flow ``g = A(y₁, y₂)`` and
   ``y₂' = warp(y₂, g)`` (:func:`denoise_lib.ops.warp`). It is trained with the paper's
   L2 loss between the aligned frame and the reference — noisy frames only — computed
   after a Gaussian smoothing ``G`` of both frames (σ = ``loss_smoothing`` pixels) and
   over the pixels where the bilinear warp samples inside the frame::

       L_align = mean_valid (G*y₂' − G*y₁)²

   On raw noisy frames the L2 loss rewards interpolation half-way between pixels
   (bilinear sampling there averages the target's noise down to a quarter of its
   variance), which biases the flow by half a pixel; after ``G`` the noise is smooth
   and interpolation hardly lowers it. The smoothing also widens the basin of
   attraction for displacements of a few pixels.
2. **Bernoulli sampler** (Eq. 7). The local SSIM map ``s`` between the aligned frame
   and the reference (:func:`denoise_lib.ops.local_ssim`, both smoothed by
   ``ssim_smoothing`` pixels, no gradient) gives each pixel the keep probability
   ``p = 1`` if ``s > 0.5``, else ``p = max(s, 0)`` (:func:`keep_probability`), and a
   mask ``m ~ B(p)`` drawn from ``batch.generator`` (:func:`bernoulli_sampler`),
   restricted to the pixels where the warp samples inside the frame.
3. **Noise2Noise loss** (Eq. 2) on the kept pixels, with the aligned frame as target:
   ``y₂`` warped by the detached flow with ``target_mode`` interpolation, so that the
   denoiser's loss does not train the alignment network::

       L_N2N = Σ m ⊙ (f(y₁) − y₂')² / (C · Σ m)        (0 when no pixel is kept)

   The total loss is ``L_N2N + align_weight · L_align``; each term reaches one network.

Reading of Eq. (7). The paper writes ``ŷ[i] = y[i]`` with probability p and 0
otherwise and trains on ``(ŷ, I_target)``. A zero kept in an L2 loss would teach the
network to output black, so here a sampled zero means "this pixel is not used": the
mask selects the pixels of the loss. The SSIM is computed between **smoothed**
frames: between two raw noisy frames at σ = 25/255 the SSIM of a flat, perfectly
aligned region is about 0.05 (its structure term sees only independent noise), which
would discard exactly the well-aligned pixels.

The denoiser's input is always the **unwarped** reference frame: a warped frame has
interpolated noise (lower variance, spatially correlated), unlike the test images.

Ablation switches (the paper's Table 2): ``align=False`` trains on the raw pairs (with
``sampler=False`` this is plain Noise2Noise on misaligned pairs), ``sampler=False``
keeps every valid pixel.

Inference is one pass of the denoiser, ``f(y)`` (:meth:`Method.predict`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..data import TrainingSet
from ..data.motion import DEFAULT_MOTION, misaligned_pairs
from ..models.align import AlignNet
from ..ops import gaussian_smooth, local_ssim, valid_mask, warp
from .base import Batch, Method

__all__ = ["Self2Align", "keep_probability", "bernoulli_sampler"]


def keep_probability(ssim: torch.Tensor) -> torch.Tensor:
    """Self2Align Eq. (7): ``p = 1`` where SSIM > 0.5, else ``p = max(SSIM, 0)``.

    Args:
        ssim: tensor of SSIM values (any shape, float).

    Returns:
        tensor of the same shape, dtype and device with values in [0, 1]; NaN entries
        give 0 (never kept). No host round trip.
    """
    return torch.where(ssim > 0.5, torch.ones_like(ssim), torch.nan_to_num(ssim, nan=0.0).clamp(0.0, 1.0))


def bernoulli_sampler(ssim: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """The SSIM-driven Bernoulli sampler of Self2Align Eq. (7): a bool mask of kept pixels.

    Each entry is kept independently with probability :func:`keep_probability` of its
    SSIM value; the uniform numbers are drawn on ``generator``'s device.

    Args:
        ssim: (N, 1, H, W) (or any shape) SSIM map.
        generator: the source of randomness (in a training step, ``batch.generator``).

    Returns:
        bool tensor of the same shape and device as ``ssim``.

    Raises:
        TypeError: ``generator`` is not a ``torch.Generator``.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"bernoulli_sampler draws random numbers: pass generator=torch.Generator(...) "
                        f"(in a loss, batch.generator), got {type(generator).__name__}")
    p = keep_probability(ssim)
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=generator.device)
    return u.to(p.device) < p


class Self2Align(Method):
    """Self2Align (Wang 2022): alignment network + SSIM Bernoulli sampler + Noise2Noise.

    Args:
        net: the denoiser ``f_θ`` mapping (N, C, H, W) → (N, C, H, W) (default from
            :func:`denoise_lib.methods.build`: the Noise2Noise U-Net).
        align: align the target frame onto the input frame (False: raw pairs).
        sampler: apply the SSIM-driven Bernoulli sampler of Eq. (7) (False: keep every
            valid pixel).
        align_net: the alignment network (default: :class:`AlignNet` for the denoiser's
            channel count with ``align_features`` features; not created when
            ``align=False``).
        align_features: width D of the default alignment network's shared frame
            features (:class:`AlignNet`'s ``features``).
        loss_smoothing: σ in pixels of the Gaussian smoothing inside the alignment loss
            (0: the paper's plain L2 on the noisy frames).
        ssim_smoothing: σ in pixels of the Gaussian smoothing of both frames before the
            SSIM of the sampler (0: SSIM of the raw noisy frames).
        ssim_window: SSIM window side (odd, ≥ 3).
        target_mode: interpolation used to warp the N2N target with the detached flow:
            ``"bicubic"`` (sharper) or ``"bilinear"``.
        align_weight: weight of the alignment loss in the total loss (> 0).

    ``requires = "pairs"``; :meth:`training_set` builds moving pairs. The Bernoulli
    masks are drawn from ``batch.generator``.

    Raises:
        ValueError: bad settings; at training time, a batch without a target or with
        frames of different shapes.
    """

    name = "self2align"
    requires = "pairs"
    data_note = ("pairs of noisy frames of a moving scene: each image and a randomly moved copy (shift ≤ "
                 f"{DEFAULT_MOTION['max_shift']:g} px, rotation ≤ {DEFAULT_MOTION['max_rotation']:g}°, elastic ≈ "
                 f"{DEFAULT_MOTION['elastic_amplitude']:g} px), independent noise on each")
    cost_note = ("one N2N forward/backward of the denoiser, plus a forward/backward of the small alignment "
                 "network, the warp and the SSIM map of the sampler: a little more than 1× N2C in FLOPs (the "
                 "counted ratio is printed beside it); more in time "
                 "(the attention, warp and SSIM are memory-bound)")

    def __init__(self, net: nn.Module, *, align: bool = True, sampler: bool = True,
                 align_net: nn.Module | None = None, align_features: int = 16,
                 loss_smoothing: float = 2.0, ssim_smoothing: float = 2.0, ssim_window: int = 7,
                 target_mode: str = "bicubic", align_weight: float = 1.0):
        super().__init__(net)
        for nm, v in (("loss_smoothing", loss_smoothing), ("ssim_smoothing", ssim_smoothing)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{nm} must be a finite number ≥ 0, got {v!r}")
        if not (isinstance(align_weight, (int, float)) and math.isfinite(align_weight) and align_weight > 0):
            raise ValueError(f"align_weight must be a positive number, got {align_weight!r}")
        if isinstance(ssim_window, bool) or not isinstance(ssim_window, int) or ssim_window < 3 \
                or ssim_window % 2 == 0:
            raise ValueError(f"ssim_window must be an odd integer ≥ 3, got {ssim_window!r}")
        if target_mode not in ("bicubic", "bilinear"):
            raise ValueError(f"target_mode must be 'bicubic' or 'bilinear', got {target_mode!r}")
        self.align_enabled, self.sampler_enabled = bool(align), bool(sampler)
        if align_net is None and align:
            c = self.channels
            if c is None:
                raise ValueError("cannot size the alignment network: the denoiser has no in_channels; "
                                 "pass align_net")
            align_net = AlignNet(c, features=align_features)
        self.align_net = align_net
        self.loss_smoothing, self.ssim_smoothing = float(loss_smoothing), float(ssim_smoothing)
        self.ssim_window, self.target_mode, self.align_weight = ssim_window, target_mode, float(align_weight)

    @classmethod
    def training_set(cls, images: list[torch.Tensor], noise, *, seed: int = 0) -> TrainingSet:
        """Misaligned noisy pairs (:func:`denoise_lib.data.motion.misaligned_pairs`, default motion).

        The reference frames are the noisy draws of :meth:`Method.training_set` for the
        same ``seed``; the targets are noisy frames of the moved images. No clean image.

        Args:
            images: list of (1, C, H, W) float32 clean images in [0, 1].
            noise: a :class:`~denoise_lib.noise.NoiseModel` or spec string.
            seed: seeds the motion and the noise.

        Raises:
            ValueError / ImageError: as :func:`~denoise_lib.data.motion.misaligned_pairs`.
        """
        return misaligned_pairs(images, noise, seed=seed)

    @torch.no_grad()
    def align(self, reference, moving) -> tuple[torch.Tensor, torch.Tensor]:
        """Align ``moving`` onto ``reference`` with the alignment network (no gradients, eval mode).

        Args:
            reference, moving: noisy frames, anything :func:`~denoise_lib.image.as_image`
                accepts (values may leave [0, 1]); same shape.

        Returns:
            ``(aligned, flow)`` on the CPU: (N, C, H, W) warped with ``target_mode``
            interpolation and the (N, 2, H, W) flow in pixels.

        Raises:
            ValueError: no alignment network (``align=False`` without ``align_net``).
        """
        from ..image import as_image

        if self.align_net is None:
            raise ValueError("this Self2Align has no alignment network (align=False)")
        ref = as_image(reference, allow_range=True)
        mov = as_image(moving, allow_range=True)
        was = self.align_net.training
        self.align_net.eval()
        device = next(self.align_net.parameters()).device
        try:
            flow = self.align_net.flow(ref.to(device), mov.to(device))
        finally:
            self.align_net.train(was)
        return warp(mov.to(device), flow, mode=self.target_mode).cpu(), flow.cpu()

    def terms(self, y1: torch.Tensor, y2: torch.Tensor | None, *,
              generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The quantities of one step (module docstring) on input ``y1`` and misaligned target ``y2``.

        Args:
            y1, y2: (N, C, H, W) float noisy frames on the model's device.
            generator: the source of the Bernoulli masks (``batch.generator`` in training).

        Returns:
            dict with ``"n2n"`` (scalar, grad into the denoiser), ``"align"`` (scalar,
            grad into the alignment network; 0 without alignment), ``"target"`` (the
            detached aligned target), ``"keep"`` ((N, 1, H, W) bool mask of the loss),
            ``"ssim"`` ((N, 1, H, W) SSIM map or None), ``"flow"`` (or None), ``"output"``.

        Raises:
            ValueError: ``y2`` is None or its shape differs from ``y1``'s.
        """
        if y2 is None:
            raise ValueError("Self2Align needs a second (misaligned) noisy frame in the batch (batch.target)")
        if y1.shape != y2.shape:
            raise ValueError(f"input {tuple(y1.shape)} and target {tuple(y2.shape)} frames differ in shape")
        flow = None
        if self.align_enabled:
            flow = self.align_net.flow(y1, y2)
            aligned = warp(y2, flow, mode="bilinear")
            valid = valid_mask(flow)
            diff = gaussian_smooth(aligned, self.loss_smoothing) - gaussian_smooth(y1, self.loss_smoothing)
            a_loss = (diff ** 2 * valid).sum() / (valid.sum() * y1.shape[1]).clamp_min(1)
            with torch.no_grad():
                target = aligned.detach() if self.target_mode == "bilinear" else \
                    warp(y2, flow.detach(), mode=self.target_mode)
            valid = valid.detach()
        else:
            target, a_loss = y2, y1.new_zeros(())
            valid = torch.ones((y1.shape[0], 1, *y1.shape[-2:]), dtype=torch.bool, device=y1.device)
        ssim = None
        if self.sampler_enabled:
            with torch.no_grad():
                ssim = local_ssim(gaussian_smooth(target, self.ssim_smoothing),
                                  gaussian_smooth(y1.detach(), self.ssim_smoothing), win_size=self.ssim_window)
            keep = bernoulli_sampler(ssim, generator=generator) & valid
        else:
            keep = valid
        out = self.net(y1)
        w = keep.to(out.dtype)
        n2n = ((out - target) ** 2 * w).sum() / (w.sum() * out.shape[1]).clamp_min(1)
        return {"n2n": n2n, "align": a_loss, "target": target, "keep": keep, "ssim": ssim,
                "flow": flow, "output": out}

    def loss(self, batch: Batch):
        """``L_N2N + align_weight · L_align``, the masks drawn from ``batch.generator``.

        Logs (detached scalar tensors): ``n2n``, ``align``, ``keep`` (fraction of pixels
        in the loss), ``ssim`` (mean, with the sampler) and ``flow`` (mean ``|g|`` in
        pixels, with alignment).
        """
        t = self.terms(batch.noisy, batch.target, generator=batch.generator)
        loss = t["n2n"] + self.align_weight * t["align"]
        logs = {"n2n": t["n2n"].detach(), "align": t["align"].detach(),
                "keep": t["keep"].float().mean()}
        if t["ssim"] is not None:
            logs["ssim"] = t["ssim"].mean()
        if t["flow"] is not None:
            logs["flow"] = t["flow"].detach().norm(dim=1).mean()
        return loss, logs

    def extra_repr(self) -> str:
        return (f"requires={self.requires!r}, align={self.align_enabled}, sampler={self.sampler_enabled}, "
                f"loss_smoothing={self.loss_smoothing:g}, ssim_smoothing={self.ssim_smoothing:g}, "
                f"target_mode={self.target_mode!r}")
