"""Self2Align: Noise2Noise on misaligned noisy frames, aligned by a network, with an SSIM-driven sampler.

Wang (2022), "Self2Align: a self-supervised denoising framework for single-scene
images", Sec. 3.3–4.2. No public code exists; this is an implementation from the
paper (book, Part 6, :doc:`../book/06_self2align_theory`). The training data are pairs
of noisy frames of a moving scene (``requires = "pairs"``, ``pair_source =
"moving"``; :func:`denoise_lib.motion.misaligned_pairs` simulates them).

One training step on a batch (``batch.noisy = y₁``, the reference frame; ``batch.target
= y₂``, the misaligned frame):

1. **Alignment** (Sec. 3.3–4.1). The alignment network
   (:class:`~denoise_lib.models.align.AlignNet`) predicts a flow ``g = A(y₁, y₂)`` and
   ``y₂' = warp(y₂, g)``. It is trained with the paper's L2 loss between the aligned
   frame and the reference — noisy frames only, never clean ones — computed after a
   Gaussian smoothing ``G`` of both frames (σ = ``loss_smoothing``, 2 pixels) and over
   the pixels where the warp samples inside the frame (bilinear warp)::

       L_align = mean_valid (G*y₂' − G*y₁)²

   Why smooth: on raw noisy frames the L2 loss rewards *blurring interpolation* —
   bilinear sampling half-way between pixels averages the noise of the target down to
   a quarter of its variance — so it prefers flows biased by half a pixel; after ``G``
   the noise left is smooth and interpolating it hardly lowers it (book, Part 6).
   The smoothing also widens the basin of attraction of the loss for displacements
   of a few pixels.
2. **Bernoulli sampler** (Eq. 7). A local SSIM map ``s`` between the aligned frame and
   the reference (:func:`local_ssim`) gives each pixel the keep probability
   ``p = 1`` if ``s > 0.5``, else ``p = max(s, 0)`` (:func:`keep_probability`), and a
   Bernoulli mask ``m ~ B(p)`` (:func:`bernoulli_sampler`), restricted to the pixels
   where the warp samples inside the frame.
3. **Noise2Noise loss** (Eq. 2) on the kept pixels, with the aligned frame as target:
   ``y₂`` warped by the detached flow with ``target_mode`` interpolation (bicubic, which
   blurs less than bilinear), so the denoiser's loss does not train the alignment
   network::

       L_N2N = Σ m ⊙ (f(y₁) − y₂')² / (C · Σ m)        (0 when no pixel is kept)

   The total loss is ``L_N2N + align_weight · L_align``; each term reaches one network.

Reading of Eq. (7). The paper writes ``ŷ[i] = y[i]`` with probability p and 0
otherwise, on the aligned image, and trains on the pair ``(ŷ, I_target)``. A zero
entry kept in an L2 loss would teach the network to output black, so here a sampled
zero means "this pixel is not used": the mask selects the pixels of the loss. The
SSIM is computed between **smoothed** frames (Gaussian of standard deviation
``ssim_smoothing`` pixels): between two raw noisy frames at σ = 25/255 the SSIM of a
flat, perfectly aligned region is about 0.05 (its structure term sees only
independent noise), which would discard exactly the pixels that are well aligned.
The SSIM map comes from ``skimage.metrics.structural_similarity(full=True)``
(7×7 uniform window, ``data_range=1``), averaged over colour channels; it carries no
gradient.

The denoiser's input is always the **unwarped** reference frame: a warped frame has
interpolated noise (lower variance, spatially correlated), unlike the test images.

Switches for the ablation (the paper's Table 2 idea): ``align=False`` trains on the raw
pairs (the alignment network is not used; with ``sampler=False`` this is plain
Noise2Noise on misaligned pairs), ``sampler=False`` keeps every valid pixel.

Inference is one pass of the denoiser, ``f(y)`` (:meth:`Method.predict`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..models.align import AlignNet
from ..motion import gaussian_smooth, valid_mask, warp
from .base import Batch, Method

__all__ = ["Self2Align", "keep_probability", "bernoulli_sampler", "local_ssim", "gaussian_smooth",
           "epsilon_identity", "measure_alignment"]


def local_ssim(a: torch.Tensor, b: torch.Tensor, *, win_size: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM map of two image batches (scikit-image, no gradient).

    ``skimage.metrics.structural_similarity(..., full=True)`` on each image (uniform
    ``win_size`` window, the standard constants K1 = 0.01, K2 = 0.03, ``data_range``),
    averaged over colour channels. Windows that do not fit small images shrink to the
    largest odd size that fits (≥ 3).

    Args:
        a, b: (N, C, H, W) float tensors of the same shape (any device; H, W ≥ 3).

    Returns:
        (N, 1, H, W) float32 tensor on ``a``'s device, values in [−1, 1].

    Raises:
        ValueError: shape mismatch, wrong rank, images smaller than 3×3, even ``win_size``.
    """
    from skimage.metrics import structural_similarity

    if a.ndim != 4 or a.shape != b.shape:
        raise ValueError(f"local_ssim needs two (N, C, H, W) tensors of the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and ≥ 3, got {win_size}")
    side = min(a.shape[-2:])
    if side < 3:
        raise ValueError(f"local SSIM needs images of at least 3×3 pixels, got {tuple(a.shape[-2:])}")
    win = min(win_size, side if side % 2 else side - 1)
    an = a.detach().to("cpu", torch.float64).numpy()
    bn = b.detach().to("cpu", torch.float64).numpy()
    maps = []
    for x, y in zip(an, bn):
        if x.shape[0] == 1:
            _, s = structural_similarity(x[0], y[0], win_size=win, data_range=data_range, full=True)
        else:
            _, s = structural_similarity(x, y, win_size=win, data_range=data_range, channel_axis=0, full=True)
            s = s.mean(axis=0)
        maps.append(s)
    return torch.from_numpy(np.stack(maps)[:, None].astype(np.float32)).to(a.device)


def keep_probability(ssim: torch.Tensor) -> torch.Tensor:
    """Self2Align Eq. (7): ``p = 1`` where SSIM > 0.5, else ``p = SSIM`` (negative SSIM → 0).

    Args:
        ssim: tensor of SSIM values (any shape).

    Returns:
        tensor of the same shape with values in [0, 1].

    Raises:
        ValueError: NaN values.
    """
    if torch.isnan(ssim).any():
        raise ValueError("SSIM map contains NaN")
    return torch.where(ssim > 0.5, torch.ones_like(ssim), ssim.clamp(0.0, 1.0))


def bernoulli_sampler(ssim: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """The SSIM-driven Bernoulli sampler of Self2Align Eq. (7): a bool mask of kept pixels.

    Each entry is kept independently with probability :func:`keep_probability` of its
    SSIM value.

    Args:
        ssim: (N, 1, H, W) (or any shape) SSIM map.
        generator: RNG for the draw (default: the global torch RNG, which
            :func:`denoise_lib.train.fit` seeds and checkpoints).

    Returns:
        bool tensor of the same shape as ``ssim``.
    """
    p = keep_probability(ssim)
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype,
                   device=generator.device if generator is not None else p.device)
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
            channel count with ``align_features`` channels). Created even when
            ``align=False`` only if passed explicitly.
        align_features: width D of the default alignment network's shared frame
            features (16; :class:`AlignNet`'s ``features``).
        loss_smoothing: σ in pixels of the Gaussian smoothing inside the alignment loss
            (2; 0 gives the paper's plain L2 on the noisy frames).
        ssim_smoothing: σ in pixels of the Gaussian smoothing of both frames before the
            SSIM of the sampler (0: SSIM of the raw noisy frames).
        ssim_window: SSIM window side (odd, ≥ 3).
        target_mode: interpolation used to warp the N2N target with the (detached)
            flow: ``"bicubic"`` (default, sharper) or ``"bilinear"``.
        align_weight: weight of the alignment loss in the total loss (> 0).

    ``requires = "pairs"``, ``pair_source = "moving"``. The Bernoulli masks come from the
    global torch RNG (seeded and checkpointed by :func:`denoise_lib.train.fit`).

    Raises:
        ValueError: bad settings; at training time, a batch without a target or with
        frames of different shapes.
    """

    name = "self2align"
    requires = "pairs"
    pair_source = "moving"
    cost_note = ("one N2N forward/backward of the denoiser, plus a forward/backward of the small alignment "
                 "network, the warp and the SSIM map of the sampler: ≈ 1.1× N2C in FLOPs; 1.2–1.7× in "
                 "time on a CPU (the attention, warp and SSIM are memory-bound), and generating the moving "
                 "pairs adds to the loop's step")

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
        if not isinstance(ssim_window, int) or ssim_window < 3 or ssim_window % 2 == 0:
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

    def terms(self, y1: torch.Tensor, y2: torch.Tensor) -> dict[str, torch.Tensor]:
        """The quantities of one step (module docstring) on input ``y1`` and misaligned target ``y2``.

        Returns:
            dict with ``"n2n"`` (scalar, grad into the denoiser), ``"align"`` (scalar,
            grad into the alignment network; 0 without alignment), ``"target"`` (the
            detached aligned target), ``"keep"`` ((N, 1, H, W) bool mask of the loss),
            ``"ssim"`` ((N, 1, H, W) SSIM map or None), ``"flow"`` (or None), ``"output"``.
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
            ssim = local_ssim(gaussian_smooth(target, self.ssim_smoothing),
                              gaussian_smooth(y1.detach(), self.ssim_smoothing), win_size=self.ssim_window)
            keep = bernoulli_sampler(ssim) & valid
        else:
            keep = valid
        out = self.net(y1)
        w = keep.to(out.dtype)
        n2n = ((out - target) ** 2 * w).sum() / (w.sum() * out.shape[1]).clamp_min(1)
        return {"n2n": n2n, "align": a_loss, "target": target, "keep": keep, "ssim": ssim,
                "flow": flow, "output": out}

    def loss(self, batch: Batch):
        """``L_N2N + align_weight · L_align``; logs n2n, align, keep (fraction), ssim (mean), flow (mean |g|)."""
        t = self.terms(batch.noisy, batch.target)
        loss = t["n2n"] + self.align_weight * t["align"]
        logs = {"n2n": t["n2n"].detach(), "align": t["align"].detach(),
                "keep": t["keep"].float().mean()}
        if t["ssim"] is not None:
            logs["ssim"] = t["ssim"].mean()
        if t["flow"] is not None:
            logs["flow"] = t["flow"].detach().norm(dim=1).mean()
        return loss, logs

    def extra_repr(self) -> str:
        return (f"requires={self.requires!r}, pair_source={self.pair_source!r}, align={self.align_enabled}, "
                f"sampler={self.sampler_enabled}, loss_smoothing={self.loss_smoothing:g}, "
                f"ssim_smoothing={self.ssim_smoothing:g}, target_mode={self.target_mode!r}")


def epsilon_identity(f, clean: torch.Tensor, moved: torch.Tensor, noise, *, draws: int = 200,
                     generator: torch.Generator | None = None) -> dict[str, float]:
    """Monte-Carlo check of the Noise2Noise loss with misaligned targets (book, Part 6).

    With ``y = x + n`` and ``z = x + ε + n'`` (``x + ε = moved``; n, n' independent,
    zero mean), for every function ``f``::

        E‖f(y) − z‖² = E‖f(y) − x‖² + E‖x − z‖² − 2‖ε‖² − 2 E⟨ε, f(y) − z⟩   (correct)
        E‖f(y) − z‖² = E‖f(y) − x‖² − E‖x − z‖² − 2 E⟨ε, f(y) − z⟩           (Eq. (4) as printed)

    All norms are divided by the number of entries d (per-entry means). Each noise
    draw gives one sample of every term; the two sides are averaged over ``draws``
    draws, and the standard error of each side's difference ``lhs − rhs`` is
    ``std / √draws`` of the per-draw differences.

    Args:
        f: callable on (N, C, H, W) tensors (evaluated under ``no_grad``).
        clean: (N, C, H, W) clean images ``x``.
        moved: (N, C, H, W) clean images of the second frame ``x + ε``.
        noise: a :class:`~denoise_lib.noise.NoiseModel` or spec string.
        draws: number of independent noise draws (≥ 2).
        generator: CPU generator for the noise.

    Returns:
        dict of floats: ``lhs``, ``supervised`` (E‖f(y) − x‖²/d), ``target_power``
        (E‖x − z‖²/d), ``eps2`` (‖ε‖²/d), ``cross`` (E⟨ε, f(y) − z⟩/d), ``rhs``
        (correct), ``rhs_printed``, ``gap`` = lhs − rhs and ``gap_se``,
        ``gap_printed`` and ``gap_printed_se``, and the form ``lhs_as_n2c`` =
        E‖f(y) − (x + ε)‖²/d + E‖n'‖²/d with ``gap_n2c``, ``gap_n2c_se``.

    Raises:
        ValueError: shape mismatch or ``draws < 2``.
    """
    from ..noise import parse_noise

    if clean.shape != moved.shape or clean.ndim != 4:
        raise ValueError(f"clean {tuple(clean.shape)} and moved {tuple(moved.shape)} must be equal (N, C, H, W)")
    if draws < 2:
        raise ValueError(f"draws must be ≥ 2, got {draws}")
    model = parse_noise(noise)
    x, xm = clean.double(), moved.double()
    eps = xm - x
    d = x.numel()
    eps2 = float((eps ** 2).sum()) / d
    rows = []
    with torch.no_grad():
        for _ in range(draws):
            y = model(clean.float(), generator).double()
            z = model(moved.float(), generator).double()
            fy = f(y.float()).double()
            rows.append([float(((fy - z) ** 2).sum()) / d, float(((fy - x) ** 2).sum()) / d,
                         float(((x - z) ** 2).sum()) / d, float((eps * (fy - z)).sum()) / d,
                         float(((fy - xm) ** 2).sum()) / d, float(((z - xm) ** 2).sum()) / d])
    a = np.array(rows)
    lhs, sup, tp, cross, n2c, npow = a.T
    gap = lhs - (sup + tp - 2 * eps2 - 2 * cross)
    gap_p = lhs - (sup - tp - 2 * cross)
    gap_c = lhs - (n2c + npow)
    se = lambda v: float(v.std(ddof=1) / math.sqrt(len(v)))  # noqa: E731
    return {"lhs": float(lhs.mean()), "supervised": float(sup.mean()), "target_power": float(tp.mean()),
            "eps2": eps2, "cross": float(cross.mean()),
            "rhs": float((sup + tp - 2 * eps2 - 2 * cross).mean()),
            "rhs_printed": float((sup - tp - 2 * cross).mean()),
            "gap": float(gap.mean()), "gap_se": se(gap),
            "gap_printed": float(gap_p.mean()), "gap_printed_se": se(gap_p),
            "lhs_as_n2c": float((n2c + npow).mean()), "gap_n2c": float(gap_c.mean()), "gap_n2c_se": se(gap_c)}


def measure_alignment(align, references, movings, clean, moved, *, border: int = 10) -> dict[str, list[float]]:
    """ε before and after alignment, on clean images, for a list of generated pairs.

    For each pair the flow is estimated from the **noisy** frames by ``align(reference,
    moving) -> (aligned, flow)`` (e.g. :meth:`Self2Align.align`), and applied to the
    **clean** moving frame with bicubic interpolation. ε (:func:`denoise_lib.motion.mismatch`)
    is measured between the clean reference and the clean moving frame before, and the
    warped clean moving frame after, over the same region (``border`` pixels excluded
    at every edge, where content leaves or enters the frame).

    Args:
        align: callable as above.
        references, movings: lists of (1, C, H, W) noisy frames.
        clean, moved: lists of the matching clean reference and clean moving frames.
        border: pixels excluded at each edge.

    Returns:
        ``{"before": [...], "after": [...]}``, one float per pair.
    """
    from ..motion import mismatch

    if not (len(references) == len(movings) == len(clean) == len(moved)) or not references:
        raise ValueError("measure_alignment needs four non-empty lists of the same length")
    before, after = [], []
    for y1, y2, x, xm in zip(references, movings, clean, moved):
        _, flow = align(y1, y2)
        before.append(mismatch(x, xm, border=border))
        after.append(mismatch(x, warp(xm, flow.to(xm.device), mode="bicubic"), border=border))
    return {"before": before, "after": after}
