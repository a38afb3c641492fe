"""The Deep Image Prior iteration slider of the Part 8 notebook, with its static figure.

A fit of :meth:`denoise_lib.methods.dip.DeepImagePrior.fit_image` with
``keep_outputs=…`` and a clean reference keeps the output at some of the recorded
iterations. :class:`IterationExplorer` shows one of them next to the noisy and clean
images, with its PSNR, and marks it on the PSNR curve. :meth:`IterationExplorer.show`
puts an iteration slider on it (ipywidgets, in Jupyter or Colab);
:meth:`IterationExplorer.figure` draws the same view as a plain matplotlib figure, which
is what the published book shows (the notebook is executed for publication with
``DENOISE_STATIC_OUTPUTS=1``, and the live slider is then replaced by one line of text).
"""
from __future__ import annotations

import os

import torch

from .. import metrics
from ..image import as_image, to_numpy

__all__ = ["IterationExplorer", "iteration_explorer"]


class IterationExplorer:
    """Browse the outputs of one DIP fit by iteration.

    Args:
        histories: label → :class:`~denoise_lib.methods.dip.FitHistory` of fits of the
            same image, each with kept outputs (``fit_image(keep_outputs=…)``) and a PSNR
            curve (``fit_image(clean=…)``).
        noisy, clean: the fitted noisy image and its clean reference, (1, C, H, W) float32
            (any layout :func:`denoise_lib.image.as_image` accepts; shown clipped to [0, 1]).
        label: the fit shown first (default: the first of ``histories``).
        iteration: the iteration shown first (default: that fit's best kept iteration).

    Raises:
        ValueError: no fit, a fit without kept outputs or without a PSNR curve, or an
            unknown ``label``.
    """

    def __init__(self, histories: dict, noisy, clean, *, label: str | None = None,
                 iteration: int | None = None):
        if not histories:
            raise ValueError("an iteration explorer needs at least one fit")
        for name, h in histories.items():
            if not h.outputs:
                raise ValueError(f"fit {name!r} kept no outputs: call fit_image(..., keep_outputs=True)")
            if not h.psnr:
                raise ValueError(f"fit {name!r} has no PSNR curve: call fit_image(..., clean=...)")
        self.histories = dict(histories)
        self.noisy = as_image(noisy, allow_range=True)
        self.clean = as_image(clean)
        self.label = label or next(iter(self.histories))
        if self.label not in self.histories:
            raise ValueError(f"unknown fit {self.label!r}; known: {', '.join(self.histories)}")
        self.iteration = self.nearest(iteration if iteration is not None else self.best_kept())

    # ------------------------------------------------------------------ state
    @property
    def history(self):
        """The :class:`FitHistory` of the fit shown."""
        return self.histories[self.label]

    def kept(self, label: str | None = None) -> list[int]:
        """The iterations of a fit whose output was kept, increasing."""
        return sorted(self.histories[label or self.label].outputs)

    def best_kept(self, label: str | None = None) -> int:
        """The kept iteration with the highest PSNR (the oracle stop among the kept ones)."""
        h = self.histories[label or self.label]
        return max(h.outputs, key=lambda t: metrics.psnr(h.outputs[t], self.clean))

    def nearest(self, iteration: int) -> int:
        """The kept iteration of the shown fit closest to ``iteration``."""
        return min(self.kept(), key=lambda t: (abs(t - iteration), t))

    def output(self, iteration: int | None = None) -> torch.Tensor:
        """The kept output at ``iteration`` (default: the one shown), float32 NCHW."""
        return self.history.outputs[self.nearest(self.iteration if iteration is None else iteration)]

    def psnr(self, iteration: int | None = None) -> float:
        """PSNR (dB) of :meth:`output` against the clean image."""
        return metrics.psnr(self.output(iteration), self.clean)

    def caption(self) -> str:
        return (f"{self.label}: iteration {self.iteration}, PSNR {self.psnr():.2f} dB "
                f"(noisy {metrics.psnr(self.noisy, self.clean):.2f} dB)")

    # ------------------------------------------------------------------ views
    def figure(self, *, width: float = 7.0):
        """The current state as a matplotlib figure: the PSNR curves with the shown
        iteration marked (top), and noisy, output and clean images (bottom)."""
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(width, width * 0.7))
        grid = fig.add_gridspec(2, 3, height_ratios=[1.0, 1.3], hspace=0.48, wspace=0.06,
                                left=0.09, right=0.98, top=0.93, bottom=0.02)
        curve = fig.add_subplot(grid[0, :])
        for name, h in self.histories.items():
            line, = curve.plot(h.iterations, h.psnr, label=name, lw=1.5 if name == self.label else 1.0,
                               alpha=1.0 if name == self.label else 0.6)
            if name == self.label:
                curve.plot([self.iteration], [self.psnr()], "o", color=line.get_color(), ms=7)
        curve.axhline(metrics.psnr(self.noisy, self.clean), color="gray", ls=":", label="noisy input")
        curve.axvline(self.iteration, color="gray", lw=0.8)
        curve.set_xlabel("iteration", fontsize=10)
        curve.set_ylabel("PSNR (dB)", fontsize=10)
        curve.tick_params(labelsize=9)
        curve.legend(fontsize=9, loc="lower right")
        panels = (("noisy", self.noisy), (f"iteration {self.iteration}: {self.psnr():.2f} dB", self.output()),
                  ("clean", self.clean))
        for k, (title, img) in enumerate(panels):
            ax = fig.add_subplot(grid[1, k])
            a = to_numpy(img.clamp(0, 1)[:1])
            ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.axis("off")
        curve.set_title(f"shown: {self.label}, iteration {self.iteration}", fontsize=10)
        return fig

    def show(self):
        """Display the live slider (ipywidgets): the fit and the iteration.

        Under ``DENOISE_STATIC_OUTPUTS=1`` (notebooks executed for publication) it prints
        one line instead; the static :meth:`figure` shows the default state.
        """
        if os.environ.get("DENOISE_STATIC_OUTPUTS") == "1":
            print("(the live iteration slider runs in Jupyter or Colab; the figure above is its default state)")
            return
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        out = w.Output()
        fit = w.Dropdown(options=list(self.histories), value=self.label, description="fit")
        slider = w.SelectionSlider(options=self.kept(), value=self.iteration, description="iteration",
                                   continuous_update=False, layout=w.Layout(width="60%"))

        def redraw(*_):
            self.label, self.iteration = fit.value, self.nearest(slider.value)
            with out:
                out.clear_output(wait=True)
                f = self.figure()
                display(f)
                plt.close(f)

        def refit(*_):
            self.label = fit.value
            slider.unobserve(redraw, names="value")
            slider.options = self.kept()
            slider.value = self.nearest(self.iteration)
            slider.observe(redraw, names="value")
            redraw()

        fit.observe(refit, names="value")
        slider.observe(redraw, names="value")
        display(w.VBox([w.HBox([fit, slider]), out]))
        redraw()


def iteration_explorer(histories: dict, noisy, clean, **kw) -> IterationExplorer:
    """An :class:`IterationExplorer` over ``histories`` (label → FitHistory) of one image."""
    return IterationExplorer(histories, noisy, clean, **kw)
