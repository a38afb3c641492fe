"""Figures and small measurements for Parts 2 (J-invariance) and 3 (blind-spot networks).

Every function returns a matplotlib figure sized for the book's text column (7 inches
wide, shown at about 700 px) without displaying it; a notebook shows it, with alt text
and a caption, through :func:`denoise_lib.course.report.show_figure`, which can also
glue it for a theory page. Images are float NCHW tensors with N = 1; they are clipped
to [0, 1] **for display only**. Notation of the book: ``y`` noisy, ``x`` clean.

* :func:`mask_figure` — the grid partition of Noise2Self, a stratified mask and the
  replacement strategies of :mod:`denoise_lib.masks` (Part 2).
* :func:`collapse_figure` — PSNR and distance to the identity along a training on the
  unmasked loss (Part 2, the identity collapse).
* :func:`image_panels` — images side by side, with their PSNR against a reference.
* :func:`receptive_field_figure` — the autograd receptive field of a blind-spot
  network and of one of its branches, with the hole at the output pixel (Part 3).
* :func:`branch_rows` — how many rows above its output one branch of a blind-spot
  U-Net sees, measured with autograd (Part 3).
* :func:`uncertainty_figure` — the predicted standard deviation and R–G correlation of
  the full Laine et al. model (Part 3).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle

from .. import masks, metrics
from ..image import as_image, to_numpy

__all__ = ["COLUMN_INCHES", "mask_figure", "collapse_figure", "image_panels", "receptive_field_figure",
           "branch_rows", "uncertainty_figure"]

#: width of the book's text column in inches (shown at 100 dpi: about 700 px)
COLUMN_INCHES = 7.0
_TITLE = 10  # font size of panel titles (pt at 100 dpi ≈ 14 px)


def _gray(ax, img: torch.Tensor, title: str) -> None:
    ax.imshow(img[0, 0].detach().cpu().clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title(title, fontsize=_TITLE)
    ax.set_xticks([])
    ax.set_yticks([])


def _mark(ax, mask: torch.Tensor, color: str = "#e8412c") -> None:
    """Outline the masked pixels of a (1, 1, H, W) boolean mask."""
    _, _, i, j = torch.nonzero(mask.cpu(), as_tuple=True)
    for r, c in zip(i.tolist(), j.tolist()):
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec=color, lw=0.9))


def mask_figure(y: torch.Tensor, *, grid: int = 4, phase: int = 6, fraction: float = 1 / 36,
                seed: int = 0):
    """The partitions and masks of Part 2 on one noisy patch ``y`` (1, 1, H, W), H, W ≥ 16
    (about 24×24 keeps single pixels visible).

    Top row: the patch; the ``grid²`` blocks of Noise2Self's grid partition (each colour
    one block :math:`J_{a,b}`); one block on the patch; a stratified mask (one pixel per
    cell of side ``masks.cell_size(fraction)``, cells drawn). Bottom row: the masked
    input :math:`\\tilde y^J` for the replacements "ups" (Noise2Void), "random"
    (Noise2Self), "donut" (the plain mean of the 8 neighbours) and "gaussian"
    (Noise2Same), with the masked pixels outlined.

    Raises:
        ValueError: ``y`` is not one single-channel image of at least 16×16.
    """
    if y.ndim != 4 or y.shape[:2] != (1, 1) or min(y.shape[-2:]) < 16:
        raise ValueError(f"mask_figure takes one single-channel patch of at least 16×16, got {tuple(y.shape)}")
    h, w = y.shape[-2:]
    g = torch.Generator().manual_seed(seed)
    mask = masks.stratified_mask(y.shape, fraction, generator=g)
    cell = masks.cell_size(fraction)
    block = masks.grid_mask(y.shape, grid, phase)
    fig, axes = plt.subplots(2, 4, figsize=(COLUMN_INCHES, 3.9))
    _gray(axes[0, 0], y, "noisy patch y")
    ii = torch.arange(h).view(h, 1) % grid
    jj = torch.arange(w).view(1, w) % grid
    cmap = ListedColormap(plt.get_cmap("tab20")(np.arange(grid * grid) % 20))
    axes[0, 1].imshow((ii * grid + jj).numpy(), cmap=cmap, interpolation="nearest")
    axes[0, 1].set_title(f"{grid * grid} grid blocks, s = {grid}", fontsize=9)
    _gray(axes[0, 2], y, f"block J({phase // grid},{phase % grid})")
    axes[0, 2].title.set_fontsize(9)
    _mark(axes[0, 2], block, color="#f2c200")
    _gray(axes[0, 3], y, f"stratified: 1 per {cell}×{cell}")
    axes[0, 3].title.set_fontsize(9)
    for k in range(0, max(h, w) + 1, cell):
        axes[0, 3].axhline(k - 0.5, color="#6fa8dc", lw=0.6)
        axes[0, 3].axvline(k - 0.5, color="#6fa8dc", lw=0.6)
    axes[0, 3].set_xlim(-0.5, w - 0.5)
    axes[0, 3].set_ylim(h - 0.5, -0.5)
    _mark(axes[0, 3], mask)
    names = {"ups": "UPS (N2V)", "random": "uniform (N2S)", "donut": "donut (8-mean)",
             "gaussian": "Gaussian (N2Same)"}
    for ax, (strategy, title) in zip(axes[1], names.items()):
        _gray(ax, masks.replace(y, mask, strategy, generator=g), title)
        ax.title.set_fontsize(9)
        _mark(ax, mask)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.4)
    return fig


def collapse_figure(steps, psnr, distance, *, psnr_noisy: float, label: str = "plain U-Net"):
    """PSNR of ``f(y)`` and its distance to the identity along a training on the unmasked loss.

    Args:
        steps: training steps at which the network was evaluated.
        psnr: mean PSNR (dB) of ``f(y)`` against the clean test images at those steps.
        distance: mean ``(f(y) − y)²`` over the test pixels, divided by σ² (0: the identity;
            about 1 for a denoiser that removes the noise).
        psnr_noisy: PSNR of the noisy input (drawn as a dashed line).
        label: legend entry of the curves.
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(COLUMN_INCHES, 2.8))
    a.plot(steps, psnr, "o-", color="#1f77b4", ms=4, label=label)
    a.axhline(psnr_noisy, ls="--", color="0.4", label="noisy input y")
    a.set_xlabel("training step")
    a.set_ylabel("PSNR of f(y) (dB)")
    a.legend(fontsize=9)
    b.semilogy(steps, np.maximum(np.asarray(distance, dtype=float), 1e-12), "o-", color="#d62728", ms=4)
    b.axhline(1.0, ls=":", color="0.4")
    b.text(0.98, 0.97, "dotted: f(y) = x gives ≈ 1", transform=b.transAxes, ha="right", va="top",
           fontsize=9, color="0.3")
    b.set_xlabel("training step")
    b.set_ylabel("mean (f(y) − y)² / σ²")
    for ax in (a, b):
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def image_panels(panels: dict, reference=None, *, crop: tuple[slice, slice] | None = None,
                 columns: int | None = None):
    """Images side by side (``columns`` per row, default all), titled with their PSNR.

    Args:
        panels: ``{title: image}``, each (1, C, H, W) with C = 1 or 3.
        reference: the clean image; every other panel gets "… dB" (8-bit PSNR on the
            whole image, not only on the crop).
        crop: ``(rows, cols)`` slices, for display only.
        columns: panels per row.
    """
    n = len(panels)
    cols = columns or n
    rows = -(-n // cols)
    side = COLUMN_INCHES / cols
    fig, axes = plt.subplots(rows, cols, figsize=(COLUMN_INCHES, rows * (side + 0.55)), squeeze=False)
    ref = None if reference is None else as_image(reference)
    for ax, (name, img) in zip(axes.flat, panels.items()):
        t = as_image(img, allow_range=True)
        label = name
        if ref is not None and t is not reference and t.shape == ref.shape and not t.equal(ref):
            label = f"{name}\n{metrics.psnr(t, ref):.2f} dB"
        shown = t.clamp(0, 1)
        if crop is not None:
            shown = shown[..., crop[0], crop[1]]
        arr = to_numpy(shown[:1])
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(label, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout(pad=0.4)
    return fig


def receptive_field_figure(field: torch.Tensor, half: torch.Tensor, pixel: tuple[int, int], *,
                           zoom: int = 3):
    """The receptive field of a blind-spot network at ``pixel``, from autograd.

    Args:
        field: (H, W) ``|∂ out_p / ∂ in|`` of the whole network
            (:func:`denoise_lib.models.blindspot.influence`).
        half: the same for one branch (before its final shift).
        pixel: ``p = (i, j)``.
        zoom: half-width of the linear close-up around ``p``.
    """
    i, j = pixel
    fig, axes = plt.subplots(1, 3, figsize=(COLUMN_INCHES, 2.7), layout="constrained")
    for ax, f, title in ((axes[0], field, "whole network"), (axes[1], half, "one branch")):
        im = ax.imshow(torch.log10(f + 1e-12).numpy(), cmap="magma", vmin=-8)
        ax.plot(j, i, "+", color="#00e5ff", ms=9, mew=1.5)
        ax.set_title(title, fontsize=_TITLE)
        ax.set_xticks([])
        ax.set_yticks([])
    cb = fig.colorbar(im, ax=axes[1], fraction=0.05, pad=0.03)
    cb.set_label("log10 |∂out_p / ∂in|", fontsize=9)
    cb.ax.tick_params(labelsize=8)
    close = field[i - zoom:i + zoom + 1, j - zoom:j + zoom + 1].numpy()
    axes[2].imshow(close, cmap="magma")
    for (r, c), v in np.ndenumerate(close):
        if v == 0:
            axes[2].text(c, r, "0", ha="center", va="center", color="#00e5ff", fontsize=11, weight="bold")
    axes[2].set_title(f"{2 * zoom + 1}×{2 * zoom + 1} around p (linear)", fontsize=_TITLE)
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    return fig


def branch_rows(depth: int, *, size: int = 512, pixel: int = 472, seed: int = 0) -> int:
    """Rows above its output that one branch of a thin blind-spot U-Net sees, by autograd.

    A random float64 ``BlindSpotUNet(1, features=2, depth=depth)`` on a ``size × size``
    random image; the count is ``pixel`` minus the highest row with a non-zero gradient
    of the branch's output at ``(pixel, pixel)``. It varies by a few rows with the
    position of the pixel relative to the pooling grid.

    Raises:
        ValueError: ``size`` not a multiple of ``2**depth`` or ``pixel`` outside the image.
    """
    from ..models.blindspot import BlindSpotUNet, influence

    if size % 2 ** depth or not 0 <= pixel < size:
        raise ValueError(f"need size a multiple of {2 ** depth} and 0 ≤ pixel < size, got {size}, {pixel}")
    torch.manual_seed(seed)
    net = BlindSpotUNet(in_channels=1, features=2, depth=depth).double()
    img = torch.rand((1, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rows = influence(net.body, img, (pixel, pixel)).sum(1)
    return pixel - int(rows.nonzero().min())


def uncertainty_figure(sigma_x: torch.Tensor):
    """Predicted uncertainty of the full model: std of the clean colour and R–G correlation.

    Args:
        sigma_x: (H, W, 3, 3) predicted covariance Σ_x of the clean colour ([0, 1] units).

    Returns:
        ``(fig, std, corr_rg)``: the figure, the (H, W) std ``sqrt(tr Σ_x / 3)`` and the (H, W)
        correlation of the red and green errors.
    """
    std = torch.sqrt(torch.diagonal(sigma_x, dim1=-2, dim2=-1).mean(-1))
    corr = sigma_x[..., 0, 1] / torch.sqrt(sigma_x[..., 0, 0] * sigma_x[..., 1, 1]).clamp_min(1e-30)
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_INCHES, 3.1))
    im = axes[0].imshow(std.numpy() * 255, cmap="viridis")
    axes[0].set_title("predicted std of x (0–255 scale)", fontsize=_TITLE)
    fig.colorbar(im, ax=axes[0], fraction=0.046).ax.tick_params(labelsize=9)
    im = axes[1].imshow(corr.numpy(), cmap="coolwarm", vmin=-1, vmax=1)
    axes[1].set_title("predicted R–G error correlation", fontsize=_TITLE)
    fig.colorbar(im, ax=axes[1], fraction=0.046).ax.tick_params(labelsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig, std, corr
