"""Figures and paired statistics of the course's first notebooks (Parts 0 and 1).

Every figure is sized for the book's text column (7 inches at 100 dpi, about 700 px)
and returned, not shown: the notebooks display it with
:func:`denoise_lib.course.report.show_figure` (an HTML ``<figure>`` with alt text and a
caption, optionally glued for a theory page).

Images are float32 NCHW tensors (N = 1) in [0, 1]; noisy images may leave [0, 1] and
are clipped **for display only**.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..image import as_image, to_numpy

__all__ = ["COLUMN_INCHES", "noise_models_figure", "offset_figure", "training_gap_figure",
           "paired_mean", "unclipped_mse"]

#: width of the book's text column in inches at the notebooks' 100 dpi (about 700 px)
COLUMN_INCHES = 7.0


def _gray(ax, img, title, *, crop=None, fontsize=9):
    t = as_image(img, allow_range=True).clamp(0, 1)
    if crop is not None:
        t = t[..., crop[0], crop[1]]
    a = to_numpy(t[:1])
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=fontsize)
    ax.axis("off")


def noise_models_figure(x, noisy: dict, variances: dict, *, bins: int = 16, width: float = COLUMN_INCHES):
    """The noise models on one image, and their standard deviation against the clean intensity.

    Top row: the clean image and each noisy version (clipped for display). Bottom: for
    each model, the standard deviation of ``y − x`` measured in ``bins`` bins of clean
    intensity (markers) and the model's ``sqrt(Var[y | x])`` (line).

    Args:
        x: clean image (1, 1, H, W).
        noisy: ``{name: y}``, noisy versions of ``x``.
        variances: ``{name: Var[y | x]}``, tensors of the shape of ``x`` (e.g. ``model.variance(x)``).
        bins: intensity bins for the measured standard deviation.
        width: figure width in inches.

    Raises:
        KeyError: a noisy image without its variance.
    """
    n = len(noisy)
    fig = plt.figure(figsize=(width, width / (n + 1) + 3.3))
    grid = fig.add_gridspec(2, n + 1, height_ratios=[width / (n + 1), 2.6])
    _gray(fig.add_subplot(grid[0, 0]), x, "clean x")
    ax = fig.add_subplot(grid[1, :])
    xs = to_numpy(as_image(x)).ravel().astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(xs, edges) - 1, 0, bins - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, y) in enumerate(noisy.items()):
        _gray(fig.add_subplot(grid[0, k + 1]), y, name)
        r = (to_numpy(as_image(y, allow_range=True)).ravel().astype(np.float64) - xs)
        var = to_numpy(as_image(variances[name], allow_range=True)).ravel().astype(np.float64)
        meas, pred, where = [], [], []
        for b in range(bins):
            sel = which == b
            if sel.sum() >= 50:
                where.append(centres[b])
                meas.append(r[sel].std())
                pred.append(np.sqrt(var[sel].mean()))
        c = colours[k % len(colours)]
        ax.plot(where, pred, "-", color=c, lw=1.5, label=f"{name}: formula")
        ax.plot(where, meas, "o", color=c, ms=4, label=f"{name}: measured")
    ax.set_xlabel("clean intensity x (bins with at least 50 pixels)")
    ax.set_ylabel("std of y − x")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig


def offset_figure(offsets: dict, target: float, *, width: float = COLUMN_INCHES, z: float = 1.96):
    """Measured offsets with ``z``-standard-error bars against the predicted value.

    Args:
        offsets: ``{name: (mean, standard error)}``.
        target: the predicted offset (σ² for Gaussian target noise).
        z: half-width of the bars in standard errors (1.96: a 95 % interval).
    """
    names = list(offsets)
    fig, ax = plt.subplots(figsize=(width, 0.45 * len(names) + 1.5))
    means = np.array([offsets[k][0] for k in names])
    ses = np.array([offsets[k][1] for k in names])
    pos = np.arange(len(names))[::-1]
    ax.errorbar(means / target, pos, xerr=z * ses / target, fmt="o", capsize=4, color="C0",
                label=f"measured, ±{z:g} s.e.")
    ax.axvline(1.0, color="C3", ls="--", label="predicted: offset = σ²")
    ax.set_yticks(pos, names)
    ax.set_xlabel("(N2N loss − N2C loss) / σ²   (same network, held-out images)")
    lim = max(0.02, float(np.max(np.abs(means / target - 1) + z * ses / target)) * 1.3)
    ax.set_xlim(1 - lim, 1 + lim)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def training_gap_figure(steps_c, loss_c, steps_n, loss_n, offset: float, *, width: float = COLUMN_INCHES):
    """Two training curves: the N2C loss and the N2N loss minus ``offset`` (log scale)."""
    fig, ax = plt.subplots(figsize=(width, 3.2))
    mark = "o" if len(steps_c) < 5 else None  # a very short run logs one or two points
    ax.plot(steps_c, loss_c, marker=mark, label="Noise2Clean network: N2C training loss")
    ax.plot(steps_n, np.asarray(loss_n) - offset, "--", marker=mark,
            label="Noise2Noise network: N2N training loss − σ²")
    ax.set_xlabel("training step")
    ax.set_ylabel("per-pixel MSE")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def paired_mean(a, b) -> tuple[float, float]:
    """Mean of ``a − b`` and its standard error (paired values, e.g. per image or per logged interval).

    The standard error is NaN for a single pair.

    Raises:
        ValueError: different lengths, not 1-D, or no pair.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 1:
        raise ValueError(f"need paired 1-D values of equal length, got shapes {a.shape} and {b.shape}")
    d = a - b
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), se


def unclipped_mse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Per-pixel mean squared error in float64, without clipping or quantisation."""
    return float(torch.mean((a.double() - b.double()) ** 2))
