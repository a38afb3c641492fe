"""Figures shared by the notebooks (matplotlib).

Images are float32 NCHW tensors (N = 1) or anything :func:`denoise_lib.image.as_image`
accepts; they are clipped to [0, 1] **for display only**.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from . import metrics
from .image import as_image, to_numpy

__all__ = ["compare"]


def compare(panels: dict, reference=None, *, crop: tuple[slice, slice] | None = None,
            size: float = 3.2, title: str | None = None):
    """Show images side by side, with their PSNR against ``reference`` in the titles.

    Args:
        panels: ``{title: image}``; each image (1, C, H, W) or any :func:`as_image` layout.
        reference: the clean image; when given, each panel other than the reference
            itself gets "PSNR … dB" (8-bit protocol, computed on the whole image).
        crop: ``(rows, cols)`` slices applied for display only (PSNR uses the whole image).
        size: inches per panel.
        title: optional figure title.

    The figure is drawn with ``plt.show()``; nothing is returned, so that a notebook
    does not display it twice.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size + 0.4), squeeze=False)
    ref = None if reference is None else as_image(reference)
    for ax, (name, img) in zip(axes[0], panels.items()):
        t = as_image(img, allow_range=True)
        label = name
        if ref is not None and t is not reference and t.shape == ref.shape and not t.equal(ref):
            label = f"{name}\n{metrics.psnr(t, ref):.2f} dB"
        shown = t.clamp(0, 1)
        if crop is not None:
            shown = shown[..., crop[0], crop[1]]
        a = to_numpy(shown[:1])
        ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(label, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.show()
