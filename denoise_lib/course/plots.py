"""Figures shared by the notebooks (matplotlib): :func:`compare` and :func:`plot_choice`.

Images are float32 NCHW tensors (N = 1) or anything :func:`denoise_lib.image.as_image`
accepts; they are clipped to [0, 1] **for display only**. :func:`compare` shows its figure
as an HTML figure with alt text (:func:`denoise_lib.course.report.show_figure`), no wider
than the book's text column.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .. import metrics
from ..image import as_image, to_numpy
from ..subsample import NeighbourChoice

__all__ = ["compare", "plot_choice"]


#: the widest figure :func:`compare` draws, in inches (the book's column is about 7 in at 100 px per inch)
MAX_WIDTH = 7.5


def compare(panels: dict, reference=None, *, crop: tuple[slice, slice] | None = None,
            size: float = 3.2, title: str | None = None, alt: str | None = None, caption: str = ""):
    """Show images side by side, with their PSNR against ``reference`` in the titles.

    Args:
        panels: ``{title: image}``; each image (1, C, H, W) or any :func:`as_image` layout.
        reference: the clean image; when given, each panel other than the reference
            itself gets "PSNR … dB" (8-bit protocol, computed on the whole image).
        crop: ``(rows, cols)`` slices applied for display only (PSNR uses the whole image).
        size: inches per panel, reduced so that the figure is at most :data:`MAX_WIDTH` wide.
        title: optional figure title.
        alt: alt text of the figure (default: the title and the panels' titles with their PSNR).
        caption: optional caption below the figure.

    The figure is displayed (an HTML figure with alt text) and closed; nothing is returned,
    so that a notebook does not display it twice.
    """
    from .report import show_figure

    size = min(size, MAX_WIDTH / max(len(panels), 1))
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size + 0.5), squeeze=False)
    ref = None if reference is None else as_image(reference)
    labels = []
    for ax, (name, img) in zip(axes[0], panels.items()):
        t = as_image(img, allow_range=True)
        label = name
        if ref is not None and t is not reference and t.shape == ref.shape and not t.equal(ref):
            label = f"{name}\n{metrics.psnr(t, ref):.2f} dB"
        labels.append(label.replace("\n", ", "))
        shown = t.clamp(0, 1)
        if crop is not None:
            shown = shown[..., crop[0], crop[1]]
        a = to_numpy(shown[:1])
        ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(label, fontsize=10 if size >= 2 else 9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    if alt is None:
        alt = (f"{title}: " if title else "") + f"{len(panels)} images side by side: " + "; ".join(labels) + "."
    show_figure(fig, alt=alt, caption=caption)


def plot_choice(choice: NeighbourChoice, *, index: int = 0, cells: tuple[int, int] = (4, 4),
                origin: tuple[int, int] = (0, 0), ax=None, title: str | None = None):
    """Draw part of a sampler: cell borders, the ``g1`` pixel (red) and the ``g2`` pixel (blue) of each cell.

    Args:
        choice: a drawn sampler.
        index: which image of the batch.
        cells: ``(rows, cols)`` of cells to draw.
        origin: ``(i, j)`` of the top-left cell drawn.
        ax: a matplotlib axis (default: a new figure).
        title: axis title.

    Returns:
        the matplotlib axis (the caller shows the figure).
    """
    h2, w2 = choice.sub_size
    i0, j0 = origin
    ni, nj = min(cells[0], h2 - i0), min(cells[1], w2 - j0)
    if ni < 1 or nj < 1:
        raise ValueError(f"no cell to draw: origin {origin} outside the {h2}×{w2} cells")
    m1, m2 = (m[index, 0, 2 * i0:2 * (i0 + ni), 2 * j0:2 * (j0 + nj)].cpu().float() for m in choice.masks())
    rgb = torch.full((2 * ni, 2 * nj, 3), 0.92)
    rgb[m1.bool()] = torch.tensor([0.85, 0.15, 0.1])
    rgb[m2.bool()] = torch.tensor([0.1, 0.3, 0.85])
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * 2 * nj + 0.5, 0.5 * 2 * ni + 0.5))
    ax.imshow(rgb.numpy(), interpolation="nearest")
    for k in range(ni + 1):
        ax.axhline(2 * k - 0.5, color="k", lw=1.5)
    for k in range(nj + 1):
        ax.axvline(2 * k - 0.5, color="k", lw=1.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax
