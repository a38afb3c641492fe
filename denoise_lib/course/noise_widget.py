"""An explorer of the noise models (ipywidgets): pick an image, a noise type and its level.

Like :mod:`denoise_lib.course.widgets`, it has two faces: :meth:`NoiseExplorer.show`
displays live controls in Jupyter or Colab, and :meth:`NoiseExplorer.figure` draws the
current state as a plain matplotlib figure, which the published (static) page keeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import metrics
from ..image import as_image, to_numpy
from ..noise import Gaussian, Poisson, Speckle

__all__ = ["NOISE_KINDS", "NoiseExplorer", "noise_explorer"]

#: noise type → its level's slider (label, min, max, step, default) and the model it makes
NOISE_KINDS = {
    "Gaussian": dict(label="σ (0–255)", min=0.0, max=75.0, step=1.0, default=25.0,
                     make=lambda v: Gaussian(v / 255), text="σ = {:g}/255"),
    "Poisson": dict(label="λ", min=1.0, max=100.0, step=1.0, default=30.0,
                    make=lambda v: Poisson(v), text="λ = {:g}"),
    "speckle": dict(label="v", min=0.01, max=0.5, step=0.01, default=0.1,
                    make=lambda v: Speckle(v), text="v = {:g}"),
}


@dataclass
class NoiseExplorer:
    """Noise of a chosen type and level on a chosen clean image.

    Attributes:
        images: name → clean image (1, C, H, W) float32 in [0, 1].
        kind: a key of :data:`NOISE_KINDS` ("Gaussian", "Poisson" or "speckle").
        level: the level in the slider's units (σ on the 0–255 scale, λ, or v);
            default: the kind's default (25, 30, 0.1).
        image: the current image's name (default: the first).
        seed: seed of the noise draw (the same draw pattern for every setting).
    """

    images: dict
    kind: str = "Gaussian"
    level: float | None = None
    image: str = ""
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not self.images:
            raise ValueError("a noise explorer needs at least one image")
        self.images = {k: as_image(v) for k, v in self.images.items()}
        self.image = self.image or next(iter(self.images))
        self.set(self.kind, self.level)

    def set(self, kind: str, level: float | None = None) -> None:
        """Choose the noise type and level (``None``: the type's default).

        Raises:
            ValueError: unknown kind, or a level outside the slider's range.
        """
        if kind not in NOISE_KINDS:
            raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
        spec = NOISE_KINDS[kind]
        level = spec["default"] if level is None else float(level)
        if not spec["min"] <= level <= spec["max"]:
            raise ValueError(f"{kind} level {spec['label']} must lie in [{spec['min']:g}, {spec['max']:g}], "
                             f"got {level:g}" + (" (σ is on the 0–255 scale here)" if kind == "Gaussian" else ""))
        self.kind, self.level = kind, level

    @property
    def model(self):
        """The current :class:`~denoise_lib.noise.NoiseModel`."""
        return NOISE_KINDS[self.kind]["make"](self.level)

    def noisy(self) -> torch.Tensor:
        """The current noisy image (not clipped); cached per setting."""
        key = (self.image, self.kind, round(self.level, 6), self.seed)
        if key not in self._cache:
            self._cache[key] = self.model(self.images[self.image], torch.Generator().manual_seed(self.seed))
        return self._cache[key]

    def caption(self) -> str:
        """The setting and the PSNR of the noisy image (8-bit protocol)."""
        x = self.images[self.image]
        text = NOISE_KINDS[self.kind]["text"].format(self.level)
        return f"{self.kind} noise, {text}: PSNR of y = {metrics.psnr(self.noisy(), x):.2f} dB"

    def figure(self, *, width: float = 7.0):
        """Clean image, noisy image (clipped for display) and the noise y − x, with the setting as title."""
        import matplotlib.pyplot as plt

        x = self.images[self.image]
        y = self.noisy()
        r = to_numpy((y - x)[:1])
        lim = max(float(np.percentile(np.abs(r), 99.5)), 1e-3)
        fig, axes = plt.subplots(1, 3, figsize=(width, width / 3 * x.shape[-2] / x.shape[-1] + 0.8))
        for ax, img, title in zip(axes[:2], (x, y.clamp(0, 1)), ("clean x", "noisy y (clipped to show)")):
            a = to_numpy(img[:1])
            ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9)
        im = axes[2].imshow(r if r.ndim == 2 else r.mean(-1), cmap="RdBu_r", vmin=-lim, vmax=lim,
                            interpolation="nearest")
        axes[2].set_title("noise y − x", fontsize=9)
        fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.03).ax.tick_params(labelsize=8)
        for ax in axes:
            ax.axis("off")
        fig.suptitle(self.caption(), fontsize=10)
        fig.tight_layout()
        return fig

    def show(self):
        """Display the live explorer (ipywidgets): image, noise type, level.

        When the notebook is executed for publication (``DENOISE_STATIC_OUTPUTS=1``,
        set by :func:`denoise_lib.course.execute_notebook`) it displays one line
        instead: a static page cannot run the controls, and :meth:`figure` shows
        their default state.
        """
        import os

        from IPython.display import Markdown, display

        if os.environ.get("DENOISE_STATIC_OUTPUTS") == "1":
            display(Markdown("*The live explorer runs in Jupyter or Colab; the figure above is its default state.*"))
            return
        import ipywidgets as w

        out = w.Output()
        pick = w.Dropdown(options=list(self.images), value=self.image, description="image")
        kind = w.Dropdown(options=list(NOISE_KINDS), value=self.kind, description="noise")
        spec = NOISE_KINDS[self.kind]
        level = w.FloatSlider(value=self.level, min=spec["min"], max=spec["max"], step=spec["step"],
                              description=spec["label"], continuous_update=False)
        busy = [False]

        def redraw(*_):
            import matplotlib.pyplot as plt

            if busy[0]:
                return
            self.image = pick.value
            self.set(kind.value, level.value)
            with out:
                out.clear_output(wait=True)
                fig = self.figure()
                display(fig)
                plt.close(fig)

        def new_kind(change):
            s = NOISE_KINDS[change["new"]]
            busy[0] = True  # re-ranging the slider fires its own events
            level.min, level.max = min(level.min, s["min"]), max(level.max, s["max"])
            level.value, level.step, level.description = s["default"], s["step"], s["label"]
            level.min, level.max = s["min"], s["max"]
            busy[0] = False
            redraw()

        pick.observe(redraw, names="value")
        level.observe(redraw, names="value")
        kind.observe(new_kind, names="value")
        display(w.VBox([w.HBox([pick, kind]), level, out]))
        redraw()


def noise_explorer(images: dict, *, kind: str = "Gaussian", level: float | None = None,
                   seed: int = 0) -> NoiseExplorer:
    """A :class:`NoiseExplorer` over clean ``images`` (name → (1, C, H, W) in [0, 1])."""
    return NoiseExplorer(dict(images), kind, level, seed=seed)
