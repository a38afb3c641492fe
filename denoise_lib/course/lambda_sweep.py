"""The λ_inv sweep of Noise2Same (course material, Part 4): results, the bound terms, a figure and an explorer.

Xie et al. (2020), "Noise2Same", §4.1–4.2 and Fig. 4 (training with λ_inv = 2σ_loss for
several σ_loss). Book: Part 4, Theorems 1–2 and the proposition on the weight λ_inv.
Notation: ``y`` noisy, ``x`` clean, per-pixel means; weights in the units of the images.

For every trained network ``f_λ`` of the sweep, :func:`bound_summary` turns the
Monte-Carlo terms of :func:`denoise_lib.course.jinvariance.bound_terms` into

* ``lhs`` — ℓ(f) = MSE(f(y), x) + MSE(y, x), the left side of the bound;
* ``R`` — the reconstruction term MSE(f(y), y);
* ``I`` — the invariance term E_J[(‖f(y)_J − f(y_{J^c})_J‖²/|J|)^{1/2}] (image units);
* ``u_2sigma`` — R + 2σ·I, Theorem 2's right side, with the gap u − ℓ and its
  bootstrap interval.

:func:`sweep_figure` draws the PSNR and these terms against λ_inv;
:class:`LambdaExplorer` is a slider over the trained weights (ipywidgets) with a static
face, :meth:`LambdaExplorer.figure`, for the book.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SweepRun", "bound_summary", "sweep_figure", "LambdaExplorer"]


@dataclass
class SweepRun:
    """One training run of the sweep.

    Attributes:
        label: short name of the weight ("2σ", "2·std", …).
        spec: the ``lambda_inv`` passed to :class:`~denoise_lib.methods.noise2same.Noise2Same`.
        method: the trained method.
        history: its :class:`~denoise_lib.train.History`.
        psnr: mean test PSNR (dB).
        note: what the weight is (shown in tables and in the explorer).
    """

    label: str
    spec: object
    method: object
    history: object
    psnr: float
    note: str = ""

    @property
    def lam(self) -> float:
        """The weight used: the fixed value, or for ``"2std"`` the mean of the logged per-batch weights."""
        if self.method.lambda_value is not None:
            return float(self.method.lambda_value)
        values = [float(e["lambda_inv"]) for e in self.history.log if "lambda_inv" in e]
        if not values:
            raise ValueError(f"run {self.label!r} logged no lambda_inv")
        return float(np.mean(values))


def bound_summary(terms, sigma: float, *, n_boot: int = 2000) -> dict[str, float]:
    """ℓ, R, I and Theorem 2's right side for one fixed network (module docstring).

    Args:
        terms: :class:`~denoise_lib.course.jinvariance.BoundTerms` of the network.
        sigma: the noise level in image units (Theorem 2's weight is 2σ).
        n_boot: bootstrap resamples for the interval of the gap.

    Returns:
        floats ``lhs, R, I, inv_2sigma (= 2σ·I), u_2sigma, gap_2sigma, gap_2sigma_lo,
        gap_2sigma_hi, gap_0_hi`` (the upper end of the gap's interval without the
        invariance term).
    """
    zero = terms.estimate(0.0, n_boot=n_boot)
    two = terms.estimate(2 * sigma, n_boot=n_boot)
    R = float(terms.R.mean())
    I = float(terms.Q.mean(0).sqrt().mean())  # noqa: E741  (the book's symbol; E_J outside the root)
    return {"lhs": two["lhs"], "R": R, "I": I, "inv_2sigma": 2 * sigma * I, "u_2sigma": two["rhs"],
            "gap_2sigma": two["gap"], "gap_2sigma_lo": two["gap_lo"], "gap_2sigma_hi": two["gap_hi"],
            "gap_0_hi": zero["gap_hi"]}


def _tick_axis(ax, runs, *, labels=True):
    xs = [r.lam for r in runs]
    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{r.label}\n{r.lam:.2f}" for r in runs] if labels else [], fontsize=9)
    ax.minorticks_off()
    ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)


def _draw_terms(ax, runs, summaries, sigma, *, mark=None):
    xs = [r.lam for r in runs]
    get = lambda k: [1e3 * summaries[r.label][k] for r in runs]  # noqa: E731
    ax.plot(xs, get("lhs"), "o-", color="k", label="ℓ = supervised MSE + noise power")
    ax.plot(xs, get("u_2sigma"), "s--", color="C1", label="u = R + 2σ·I (Theorem 2)")
    ax.plot(xs, get("R"), "^-", color="C0", label="R, reconstruction")
    ax.plot(xs, get("inv_2sigma"), "v-", color="C2", label="2σ·I, invariance")
    if mark is not None:
        ax.axvline(mark, color="0.5", lw=6, alpha=0.25)
    ax.set_ylabel("per pixel (× 10⁻³)")
    _tick_axis(ax, runs)
    ax.set_xlabel("λ_inv used in training (log scale)")
    ax.grid(alpha=0.3)


def sweep_figure(runs: list[SweepRun], summaries: dict, *, sigma: float, psnr_noisy: float | None = None,
                 width: float = 7.0):
    """PSNR and the bound terms of each trained network against its λ_inv (two panels).

    Args:
        runs: the sweep, in increasing order of :attr:`SweepRun.lam` (it is sorted here).
        summaries: label → :func:`bound_summary` of that run's network.
        sigma: noise level (for the 2σ marker).
        psnr_noisy: PSNR of the noisy input (a dotted line), optional.
        width: figure width in inches (7 fits the book's column).

    Returns:
        the matplotlib figure (not shown).
    """
    import matplotlib.pyplot as plt

    runs = sorted(runs, key=lambda r: r.lam)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 0.95 * width), sharex=False)
    top.plot([r.lam for r in runs], [r.psnr for r in runs], "o-", color="C3", label="Noise2Same, test PSNR")
    if psnr_noisy is not None:
        top.axhline(psnr_noisy, color="gray", ls=":", label="noisy input")
    top.axvline(2 * sigma, color="C1", ls="--", lw=1, label="2σ (Theorem 2)")
    top.set_ylabel("PSNR (dB)")
    _tick_axis(top, runs)
    top.legend(fontsize=9, loc="best")
    top.grid(alpha=0.3)
    _draw_terms(bottom, runs, summaries, sigma)
    bottom.legend(fontsize=9, loc="best")
    fig.tight_layout()
    return fig


@dataclass
class LambdaExplorer:
    """A slider over the trained weights of the sweep: the denoised crop and the bound terms.

    Attributes:
        runs: the sweep (:class:`SweepRun`).
        summaries: label → :func:`bound_summary`.
        noisy, clean: a test image crop (1, 1, H, W), noisy and clean.
        sigma: the noise level (image units).
        label: the selected run (default: the library's default weight "2·std" when present).
    """

    runs: list
    summaries: dict
    noisy: object
    clean: object
    sigma: float
    label: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.runs = sorted(self.runs, key=lambda r: r.lam)
        if not self.runs:
            raise ValueError("the explorer needs at least one run")
        names = [r.label for r in self.runs]
        if not self.label:
            self.label = next((n for n in names if "std" in n), names[0])
        if self.label not in names:
            raise ValueError(f"no run {self.label!r}; runs: {', '.join(names)}")

    def run(self, label: str | None = None) -> SweepRun:
        label = label or self.label
        return next(r for r in self.runs if r.label == label)

    def output(self, label: str | None = None):
        """The denoised crop of run ``label`` (cached), clipped to [0, 1]."""
        label = label or self.label
        if label not in self._cache:
            self._cache[label] = self.run(label).method.denoise(self.noisy).clamp(0, 1)
        return self._cache[label]

    def figure(self, label: str | None = None, *, width: float = 7.0):
        """The explorer's state for ``label`` (default: the current one) as a matplotlib figure."""
        import matplotlib.pyplot as plt

        from .. import metrics
        from ..image import to_numpy

        r = self.run(label)
        out = self.output(r.label)
        fig = plt.figure(figsize=(width, 0.78 * width))
        grid = fig.add_gridspec(2, 2, height_ratios=[1.0, 0.9])
        for k, (img, title) in enumerate([(self.noisy.clamp(0, 1), f"noisy ({metrics.psnr(self.noisy, self.clean):.2f} dB)"),
                                          (out, f"λ_inv = {r.label} = {r.lam:.3f}: {metrics.psnr(out, self.clean):.2f} dB")]):
            ax = fig.add_subplot(grid[0, k])
            ax.imshow(to_numpy(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.axis("off")
        ax = fig.add_subplot(grid[1, :])
        _draw_terms(ax, self.runs, self.summaries, self.sigma, mark=r.lam)
        ax.legend(fontsize=8, loc="best", ncol=2)
        s = self.summaries[r.label]
        ax.set_title(f"selected: ℓ = {1e3 * s['lhs']:.2f}, u = {1e3 * s['u_2sigma']:.2f} (× 10⁻³); "
                     f"test PSNR {r.psnr:.2f} dB", fontsize=10)
        fig.tight_layout()
        return fig

    def show(self):
        """Display the live slider (ipywidgets) in Jupyter or Colab.

        When the notebook is executed for publication (``DENOISE_STATIC_OUTPUTS=1``) it
        prints one line instead: the page shows :meth:`figure` of the default state.
        """
        import os

        if os.environ.get("DENOISE_STATIC_OUTPUTS") == "1":
            print("(the live λ_inv slider runs in Jupyter or Colab; the figure above is its default state)")
            return
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        out = w.Output()
        slider = w.SelectionSlider(options=[r.label for r in self.runs], value=self.label,
                                   description="λ_inv", continuous_update=False,
                                   layout=w.Layout(width="60%"))

        def redraw(*_):
            self.label = slider.value
            with out:
                out.clear_output(wait=True)
                fig = self.figure()
                display(fig)
                plt.close(fig)

        slider.observe(redraw, names="value")
        display(w.VBox([slider, out]))
        redraw()
