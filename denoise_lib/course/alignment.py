"""Measurements for Self2Align (course material): registration, the gap, the misaligned-N2N identity.

Wang (2022), "Self2Align: a self-supervised denoising framework for single-scene
images", Eq. (3)–(4); book, Part 6 (:doc:`../book/06_self2align_theory`).
Notation: ``y = x + n`` the noisy reference, ``z = x + ε + n'`` the noisy moving frame
(``x + ε`` its clean image, ``ε`` the gap **vector**), ``d`` the number of entries, and
``ε̄² = ‖ε‖²/d`` the per-entry mean squared gap (the book's ``\bar\varepsilon^2``).
Flows follow :func:`denoise_lib.ops.warp`.

* :func:`global_shift` — a classical integer-translation registration (exhaustive search);
* :func:`mismatch` — ε̄², the mean squared difference of two clean images;
* :func:`measure_alignment` — ε̄² before and after an alignment, for many pairs;
* :func:`epsilon_identity` — a Monte-Carlo check of the Noise2Noise loss with a
  misaligned target (the corrected form of Eq. (4) and the printed one);
* :func:`sampler_figure` — a misaligned pair before and after alignment, with the SSIM
  map, the keep probability and one Bernoulli mask of Eq. (7).

These run on the host (they return Python floats); they are not for training steps.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..noise import parse_noise
from ..ops import gaussian_smooth, warp

__all__ = ["global_shift", "mismatch", "measure_alignment", "epsilon_identity", "sampler_figure"]


def global_shift(reference: torch.Tensor, moving: torch.Tensor, *, max_shift: int = 16,
                 smoothing: float = 1.0) -> torch.Tensor:
    """The integer translation that best aligns ``moving`` onto ``reference`` (exhaustive search).

    Minimises the mean squared difference of the two frames, Gaussian-smoothed by
    ``smoothing`` pixels (which suppresses noise), over the interior that every
    candidate shift ``|dx|, |dy| ≤ max_shift`` keeps inside both frames.

    Args:
        reference, moving: (1, C, H, W) float tensors (noisy frames are fine), with
            ``H, W > 2·max_shift``.
        max_shift: largest shift tried along each axis, in pixels (≥ 0).
        smoothing: σ of the Gaussian pre-smoothing in pixels (≥ 0).

    Returns:
        (1, 2, H, W) constant flow ``(dx, dy)`` with ``warp(moving, flow) ≈ reference``.

    Raises:
        ValueError: shapes differ, a batch of more than one, or frames too small.
    """
    if reference.shape != moving.shape or reference.ndim != 4 or reference.shape[0] != 1:
        raise ValueError(f"global_shift needs two (1, C, H, W) frames of the same shape, got "
                         f"{tuple(reference.shape)} and {tuple(moving.shape)}")
    m = int(max_shift)
    h, w = reference.shape[-2:]
    if m < 0 or h <= 2 * m or w <= 2 * m:
        raise ValueError(f"max_shift must be ≥ 0 and < half the frame size, got {max_shift} for {h}×{w}")
    a = gaussian_smooth(reference, smoothing)
    b = gaussian_smooth(moving, smoothing)
    core = a[..., m:h - m, m:w - m]
    costs = torch.stack([((core - b[..., m + dy:h - m + dy, m + dx:w - m + dx]) ** 2).mean()
                         for dy in range(-m, m + 1) for dx in range(-m, m + 1)])
    best = int(costs.argmin())                 # first minimum in row-major (dy, dx) order
    dy, dx = divmod(best, 2 * m + 1)
    flow = torch.zeros((1, 2, h, w), dtype=reference.dtype, device=reference.device)
    flow[:, 0], flow[:, 1] = float(dx - m), float(dy - m)
    return flow


def mismatch(a: torch.Tensor, b: torch.Tensor, *, mask: torch.Tensor | None = None,
             border: int = 0) -> float:
    """ε̄² of two clean images: the mean squared difference per entry, over a valid region.

    ``mismatch(a, b) = (1/(|Ω|·C)) Σ_{p∈Ω} Σ_c (a[c, p] − b[c, p])²`` summed over the batch,
    where Ω is the set of pixels at least ``border`` pixels from every edge and inside
    ``mask`` (when given). With ``a = x`` and ``b = x + ε`` (the aligned moving clean
    frame) it is ``ε̄² = ‖ε‖²/d`` over Ω (ε of Self2Align's Eq. (3)). Exclude
    warped-in borders with ``border`` (e.g. the largest displacement) or with
    ``mask = denoise_lib.ops.valid_mask(flow)``.

    Args:
        a, b: (N, C, H, W) float tensors of the same shape ([0, 1] units).
        mask: optional (N or 1, 1, H, W) bool tensor of pixels to include.
        border: width in pixels excluded at each edge (≥ 0).

    Returns:
        float (squared [0, 1] units), computed in float64.

    Raises:
        ValueError: shape mismatch, negative border, or an empty region.
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"mismatch needs two (N, C, H, W) tensors of the same shape, got "
                         f"{getattr(a, 'shape', type(a))} and {getattr(b, 'shape', type(b))}")
    if int(border) < 0:
        raise ValueError(f"border must be ≥ 0, got {border}")
    n, c, h, w = a.shape
    keep = torch.zeros((1, 1, h, w), dtype=torch.bool, device=a.device)
    keep[..., border:h - border, border:w - border] = True
    keep = keep.expand(n, 1, h, w)
    if mask is not None:
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != (h, w):
            raise ValueError(f"mask must be (N or 1, 1, H, W) = (…, 1, {h}, {w}), got {tuple(mask.shape)}")
        keep = keep & mask.to(torch.bool).to(a.device)
    count = int(keep.sum()) * c
    if count == 0:
        raise ValueError("mismatch: the region is empty (border too wide or mask all False)")
    d2 = (a.double() - b.to(a.device).double()) ** 2
    return float((d2 * keep).sum() / count)


def measure_alignment(align, references, movings, clean, moved, *, border: int = 10) -> dict[str, list[float]]:
    """ε̄² before and after alignment, on clean images, for a list of pairs.

    For each pair the flow is estimated from the **noisy** frames by ``align(reference,
    moving) -> (aligned, flow)`` (e.g. :meth:`denoise_lib.methods.self2align.Self2Align.align`)
    and applied to the **clean** moving frame with bicubic interpolation. ε̄²
    (:func:`mismatch`) is measured between the clean reference and the clean moving
    frame before, and the warped clean moving frame after, over the same region
    (``border`` pixels excluded at every edge, where content leaves or enters the frame).

    Args:
        align: callable as above.
        references, movings: lists of (1, C, H, W) noisy frames.
        clean, moved: lists of the matching clean reference and clean moving frames.
        border: pixels excluded at each edge.

    Returns:
        ``{"before": [...], "after": [...]}``, one float per pair.

    Raises:
        ValueError: lists empty or of different lengths; as :func:`mismatch`.
    """
    if not (len(references) == len(movings) == len(clean) == len(moved)) or not references:
        raise ValueError("measure_alignment needs four non-empty lists of the same length")
    before, after = [], []
    for y1, y2, x, xm in zip(references, movings, clean, moved):
        _, flow = align(y1, y2)
        before.append(mismatch(x, xm, border=border))
        after.append(mismatch(x, warp(xm, flow.to(xm.device), mode="bicubic"), border=border))
    return {"before": before, "after": after}


def epsilon_identity(f, clean: torch.Tensor, moved: torch.Tensor, noise, *, draws: int = 200,
                     generator: torch.Generator | None = None) -> dict[str, float]:
    """Monte-Carlo check of the Noise2Noise loss with misaligned targets (Self2Align Eq. (4)).

    With ``y = x + n`` and ``z = x + ε + n'`` (``x + ε = moved``; n, n' independent,
    zero mean), for every function ``f``::

        E‖f(y) − z‖² = E‖f(y) − x‖² + E‖x − z‖² − 2‖ε‖² − 2 E⟨ε, f(y) − z⟩   (correct)
        E‖f(y) − z‖² = E‖f(y) − x‖² − E‖x − z‖² − 2 E⟨ε, f(y) − z⟩           (Eq. (4) as printed)

    All norms are divided by ``d`` (per-entry means). Each noise draw gives one sample
    of every term; the sides are averaged over ``draws`` draws, and the standard error
    of each ``lhs − rhs`` is ``std / √draws`` of the per-draw differences.

    Args:
        f: callable on (N, C, H, W) tensors (evaluated under ``no_grad``).
        clean: (N, C, H, W) clean images ``x``.
        moved: (N, C, H, W) clean images of the second frame ``x + ε``.
        noise: a :class:`~denoise_lib.noise.NoiseModel` or spec string.
        draws: number of independent noise draws (≥ 2).
        generator: CPU generator for the noise (default: a fresh one seeded with 0).

    Returns:
        dict of floats: ``lhs``, ``supervised`` (E‖f(y) − x‖²/d), ``target_power``
        (E‖x − z‖²/d), ``eps2`` (‖ε‖²/d), ``cross`` (E⟨ε, f(y) − z⟩/d), ``rhs``
        (correct), ``rhs_printed``, ``gap`` = lhs − rhs and ``gap_se``,
        ``gap_printed`` and ``gap_printed_se``, and the form ``lhs_as_n2c`` =
        E‖f(y) − (x + ε)‖²/d + E‖n'‖²/d with ``gap_n2c``, ``gap_n2c_se``.

    Raises:
        ValueError: shape mismatch or ``draws < 2``.
    """
    if clean.shape != moved.shape or clean.ndim != 4:
        raise ValueError(f"clean {tuple(clean.shape)} and moved {tuple(moved.shape)} must be equal (N, C, H, W)")
    if draws < 2:
        raise ValueError(f"draws must be ≥ 2, got {draws}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
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

    def se(v):
        return float(v.std(ddof=1) / math.sqrt(len(v)))

    return {"lhs": float(lhs.mean()), "supervised": float(sup.mean()), "target_power": float(tp.mean()),
            "eps2": eps2, "cross": float(cross.mean()),
            "rhs": float((sup + tp - 2 * eps2 - 2 * cross).mean()),
            "rhs_printed": float((sup - tp - 2 * cross).mean()),
            "gap": float(gap.mean()), "gap_se": se(gap),
            "gap_printed": float(gap_p.mean()), "gap_printed_se": se(gap_p),
            "lhs_as_n2c": float((n2c + npow).mean()), "gap_n2c": float(gap_c.mean()), "gap_n2c_se": se(gap_c)}


@torch.no_grad()
def sampler_figure(method, reference, moving, clean, moved, *, generator: torch.Generator,
                   crop: tuple[slice, slice] | None = None, width: float = 7.0):
    """One misaligned pair through a trained Self2Align: alignment, SSIM map, keep probability, mask.

    Panels: the noisy reference ``y``, the noisy second frame ``y'``, ``y'`` aligned onto
    ``y`` by the method's network, one Bernoulli mask ``m`` of Eq. (7) (white: kept in
    the loss); the clean gap before and after alignment (the flow estimated from the
    noisy frames, applied to the clean second frame), the SSIM map of the smoothed
    aligned pair and the keep probability ``p`` (Eq. (7)).

    Args:
        method: a trained :class:`~denoise_lib.methods.self2align.Self2Align` with alignment.
        reference, moving: (1, C, H, W) noisy frames. clean, moved: their clean images.
        generator: source of the Bernoulli mask (CPU generator).
        crop: ``(rows, cols)`` slices for display (the computation uses the whole frame).
        width: figure width in inches.

    Returns:
        ``(figure, info)`` with ``info`` floats: ``eps_before``, ``eps_after`` (ε̄² over
        the displayed region), ``keep`` (fraction of the frame's pixels kept) and
        ``ssim`` (mean SSIM).
    """
    import matplotlib.pyplot as plt

    from ..image import to_numpy
    from ..methods.self2align import keep_probability

    device = next(method.parameters()).device
    was = method.training
    method.eval()
    try:
        t = method.terms(reference.to(device), moving.to(device), generator=generator)
    finally:
        method.train(was)
    if t["flow"] is None or t["ssim"] is None:
        raise ValueError("sampler_figure needs a Self2Align with alignment and the sampler switched on")
    flow = t["flow"].cpu()
    aligned_clean = warp(moved, flow, mode="bicubic")
    p = keep_probability(t["ssim"]).cpu()
    crop = crop or (slice(None), slice(None))
    view = lambda img: img[..., crop[0], crop[1]]  # noqa: E731
    gap_before, gap_after = view(moved - clean), view(aligned_clean - clean)
    info = {"eps_before": float((gap_before.double() ** 2).mean()), "eps_after": float((gap_after.double() ** 2).mean()),
            "keep": float(t["keep"].float().mean()), "ssim": float(t["ssim"].mean())}
    panels = [("noisy reference\ny", view(reference), "gray", 0, 1),
              ("noisy second\nframe y′", view(moving), "gray", 0, 1),
              ("y′ aligned\nonto y", view(t["target"].cpu()), "gray", 0, 1),
              ("Bernoulli mask m\n(white: kept)", view(t["keep"].float().cpu()), "gray", 0, 1),
              (f"clean gap before\nε̄² = {info['eps_before']:.4f}", gap_before, "RdBu", -0.3, 0.3),
              (f"clean gap after\nε̄² = {info['eps_after']:.4f}", gap_after, "RdBu", -0.3, 0.3),
              ("SSIM of the smoothed\naligned pair", view(t["ssim"].cpu()), "viridis", 0, 1),
              ("keep probability p\n(Eq. (7))", view(p), "viridis", 0, 1)]
    fig, axes = plt.subplots(2, 4, figsize=(width, 0.58 * width))
    for ax, (title, img, cmap, lo, hi) in zip(axes.flat, panels):
        a = to_numpy(img[:1, :1].float().clamp(lo, hi) if cmap == "gray" else img[:1, :1].float())
        ax.imshow(a, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig, info
