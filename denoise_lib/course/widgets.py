"""Interactive explorers for the notebooks (ipywidgets), each with a static figure for the book.

A published page cannot run Python, so every explorer has two faces: :meth:`Explorer.show`
displays the live widgets (in Jupyter or Colab), and :meth:`Explorer.figure` draws the
explorer's current state as a plain matplotlib figure, which the executed notebook
keeps as an image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .. import metrics
from ..image import as_image, to_numpy

__all__ = ["Explorer", "denoise_explorer"]

#: denoiser(y (1, C, H, W) float32, strength σ in [0, 1] units) → (1, C, H, W)
Denoise = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass
class Explorer:
    """Pick an image, a denoiser and its strength; see noisy and denoised side by side.

    Attributes:
        images: name → noisy image (1, C, H, W) float32 (values may leave [0, 1]; shown clipped).
        denoisers: name → ``f(y, sigma)``; ``sigma`` is the strength in [0, 1] units.
        sigma: the initial strength (the estimate of the image's noise, typically).
        clean: optional name → clean image, to print the PSNR where one exists.
    """

    images: dict
    denoisers: dict
    sigma: float
    clean: dict = field(default_factory=dict)
    image: str = ""
    method: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not self.images or not self.denoisers:
            raise ValueError("an explorer needs at least one image and one denoiser")
        if not 0 <= self.sigma <= 1:
            raise ValueError(f"sigma is in [0, 1] units (25/255 for σ = 25 on the 0–255 scale), got {self.sigma}")
        self.images = {k: as_image(v, allow_range=True) for k, v in self.images.items()}  # noisy: may leave [0, 1]
        self.image = self.image or next(iter(self.images))
        self.method = self.method or next(iter(self.denoisers))

    def result(self, image: str | None = None, method: str | None = None, sigma: float | None = None):
        """The denoised image for a choice (default: the current one); cached."""
        image, method = image or self.image, method or self.method
        sigma = self.sigma if sigma is None else float(sigma)
        key = (image, method, round(sigma, 6))
        if key not in self._cache:
            self._cache[key] = self.denoisers[method](self.images[image], sigma).clamp(0, 1)
        return self._cache[key]

    def caption(self) -> str:
        s = f"{self.method}, strength σ = {self.sigma * 255:.1f}/255"
        if self.image in self.clean:
            x = self.clean[self.image]
            s += (f"; PSNR {metrics.psnr(self.images[self.image], x):.2f} → "
                  f"{metrics.psnr(self.result(), x):.2f} dB")
        return s

    def figure(self, *, width: float = 9.0):
        """The current state as a matplotlib figure: noisy and denoised, with the settings in the title."""
        import matplotlib.pyplot as plt

        y, d = to_numpy(self.images[self.image].clamp(0, 1)), to_numpy(self.result())
        cmap = "gray" if y.ndim == 2 else None
        fig, axes = plt.subplots(1, 2, figsize=(width, width / 2 * y.shape[0] / y.shape[1] + 0.6))
        for ax, img, title in zip(axes, (y, d), (f"noisy: {self.image}", "denoised")):
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title)
            ax.axis("off")
        fig.suptitle(self.caption())
        fig.tight_layout()
        return fig

    def add_upload(self, name: str, content: bytes) -> None:
        """Add an uploaded image file (its bytes) as a noisy image."""
        import tempfile
        from pathlib import Path

        from ..image import read_image

        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / Path(name).name
            p.write_bytes(content)
            self.images[p.name] = read_image(p)
        self.image = p.name

    def show(self):
        """Display the live explorer (ipywidgets): upload, image, method, strength.

        When the notebook is executed for publication (``DENOISE_STATIC_OUTPUTS=1``, set
        by :func:`denoise_lib.course.execute_notebook`), it prints one line instead: a
        static page cannot run the controls, and :meth:`figure` shows their state.
        """
        import os

        if os.environ.get("DENOISE_STATIC_OUTPUTS") == "1":
            print("(the live explorer runs in Jupyter or Colab; the figure above is its default state)")
            return
        import ipywidgets as w
        from IPython.display import display

        out = w.Output()
        upload = w.FileUpload(accept="image/*", multiple=False, description="Upload")
        pick = w.Dropdown(options=list(self.images), value=self.image, description="image")
        method = w.Dropdown(options=list(self.denoisers), value=self.method, description="method")
        strength = w.FloatSlider(value=round(self.sigma * 255, 1), min=0.0, max=75.0, step=0.5,
                                 description="σ (0–255)", continuous_update=False)

        def redraw(*_):
            import matplotlib.pyplot as plt

            self.image, self.method, self.sigma = pick.value, method.value, strength.value / 255
            with out:
                out.clear_output(wait=True)
                fig = self.figure()
                display(fig)
                plt.close(fig)

        def uploaded(change):
            for f in change["new"]:
                self.add_upload(f["name"], bytes(f["content"]))
            pick.options = list(self.images)
            pick.value = self.image

        for control in (pick, method, strength):
            control.observe(redraw, names="value")
        upload.observe(uploaded, names="value")
        display(w.VBox([w.HBox([upload, pick]), w.HBox([method, strength]), out]))
        redraw()


def denoise_explorer(images: dict, denoisers: dict, *, sigma: float, clean: dict | None = None) -> Explorer:
    """An :class:`Explorer` over noisy ``images`` and ``denoisers`` (name → ``f(y, sigma)``)."""
    return Explorer(dict(images), dict(denoisers), float(sigma), dict(clean or {}))
