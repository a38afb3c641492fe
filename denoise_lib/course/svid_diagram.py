"""The SVID training step as a diagram (Part 7): noisy y → f_θ → η → re-noise → f_θ → loss.

:func:`svid_loop` draws one step of their Eq. (8)–(10) with matplotlib: the two passes
through the same network, the fresh ±1 mask, and the stop-gradient on η (the target
and the re-noised input are constants of the step; gradients reach θ through the
second pass, and through the first only by the optional data term). It is a picture
of the algorithm, not of a measurement.
"""
from __future__ import annotations

__all__ = ["svid_loop"]


def svid_loop(*, width: float = 7.0, data_term: bool = True):
    """The SVID step as a matplotlib figure.

    Args:
        width: figure width in inches (7 fills the book's column at 100 px per inch).
        data_term: also draw the data term ``λ‖f_θ(y) − y‖²`` of their Eq. (8)
            (the library's default; ``False``: their Eq. (10) alone).

    Returns:
        the matplotlib figure (not shown; the caller shows or glues it).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(width, width * 0.46))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.6)
    ax.axis("off")

    def box(x, y, text, *, w=1.5, h=0.62, fc="#eef2f8", ec="#33415c", fs=10):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04,rounding_size=0.12",
                                    fc=fc, ec=ec, lw=1.2))
        ax.text(x, y, text, ha="center", va="center", fontsize=fs)

    def arrow(p, q, *, color="#33415c", ls="-", text=None, toff=(0, 0.17), rad=0.0, fs=9):
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=12, color=color, lw=1.2,
                                     linestyle=ls, connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))
        if text:
            ax.text((p[0] + q[0]) / 2 + toff[0], (p[1] + q[1]) / 2 + toff[1], text, ha="center",
                    va="center", fontsize=fs, color=color)

    net = dict(fc="#fff4e0", ec="#a35c00")
    red, green = "#b3261e", "#2e6b3a"
    top, mid, low = 3.95, 2.4, 0.8
    # first pass, then the stop-gradient
    box(0.85, top, "noisy $\\mathbf{y}$")
    box(2.75, top, "$f_\\theta$", w=1.0, **net)
    box(4.75, top, "$\\boldsymbol{\\eta} = f_\\theta(\\mathbf{y})$", w=1.9)
    box(8.55, top, "$\\operatorname{sg}(\\boldsymbol{\\eta})$", w=1.5, fc="#fde8e8", ec=red)
    arrow((1.6, top), (2.25, top))
    arrow((3.25, top), (3.8, top))
    arrow((5.7, top), (7.8, top), color=red, text="stop-gradient", toff=(0, -0.25))
    for xb in (6.7, 6.8):
        ax.plot([xb, xb], [top - 0.13, top + 0.13], color=red, lw=2.2)
    # re-noising with a fresh mask (no gradient: built from sg(η))
    box(1.35, mid, "$\\hat{\\mathbf{n}} = \\mathbf{y} - \\operatorname{sg}(\\boldsymbol{\\eta})$", w=2.5)
    box(3.95, mid, "fresh mask\n$m_i = \\pm 1$, prob. $\\frac{1}{2}$", w=2.0, h=0.78, fs=9)
    box(6.55, mid, "$\\mathbf{y}_2 = \\operatorname{sg}(\\boldsymbol{\\eta}) + \\mathbf{m} \\odot \\hat{\\mathbf{n}}$",
        w=2.9)
    arrow((0.85, top - 0.31), (1.0, mid + 0.31))
    arrow((4.4, top - 0.31), (1.9, mid + 0.31), color=red, ls="--")
    arrow((2.6, mid), (2.95, mid))
    arrow((4.95, mid), (5.1, mid))
    arrow((8.55, top - 0.31), (7.6, mid + 0.31), color=red, ls="--")
    # second pass through the same network, and the loss
    box(3.0, low, "$f_\\theta(\\mathbf{y}_2)$", w=1.6, **net)
    arrow((5.6, mid - 0.31), (3.5, low + 0.31), text="same $f_\\theta$", toff=(-0.35, 0.12))
    loss = ("$\\|f_\\theta(\\mathbf{y}_2) - \\operatorname{sg}(\\boldsymbol{\\eta})\\|^2$"
            + ("\n$+\\ \\kappa\\,\\|f_\\theta(\\mathbf{y}) - \\mathbf{y}\\|^2$" if data_term else ""))
    box(7.6, low, loss, w=3.3, h=0.95 if data_term else 0.62, fc="#e9f5ec", ec=green)
    arrow((3.8, low), (5.95, low), color=green, text="gradient to θ", toff=(0, 0.2))
    ax.annotate("", xy=(9.35, low + 0.2), xytext=(9.35, top - 0.31), arrowprops=dict(
        arrowstyle="-|>", color=red, ls="--", lw=1.2))
    ax.text(9.62, (top + low) / 2, "target", fontsize=9, color=red, rotation=90, va="center")
    if data_term:
        ax.text(0.1, low, "data term:\ngradient through\nthe first pass", fontsize=8.5, color=green,
                va="center")
    fig.tight_layout(pad=0.2)
    return fig
