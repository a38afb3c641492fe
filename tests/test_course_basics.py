"""Figures, paired statistics and the noise explorer of the Part 0/1 notebooks (denoise_lib.course.figures_basics,
denoise_lib.course.noise_widget)."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

from denoise_lib.course import figures_basics as figs
from denoise_lib.course import noise_widget
from denoise_lib.noise import Gaussian, Poisson, Speckle

matplotlib.use("Agg")


def clean(h=32, w=40):
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, h, w, generator=g)


def test_paired_mean_and_its_standard_error():
    m, se = figs.paired_mean([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])
    assert m == pytest.approx(3.0) and se == pytest.approx(1.0 / math.sqrt(3))
    assert math.isnan(figs.paired_mean([1.0], [0.0])[1])
    with pytest.raises(ValueError):
        figs.paired_mean([1.0, 2.0], [1.0])


def test_the_figures_are_column_wide():
    x = clean()
    models = {"Gaussian": Gaussian(0.1), "Poisson": Poisson(30.0), "speckle": Speckle(0.1)}
    noisy = {k: m(x, torch.Generator().manual_seed(1)) for k, m in models.items()}
    fig = figs.noise_models_figure(x, noisy, {k: m.variance(x) for k, m in models.items()}, bins=4)
    assert fig.get_figwidth() == figs.COLUMN_INCHES
    fig2 = figs.offset_figure({"f": (0.0096, 1e-5), "g": (0.0097, 2e-5)}, 0.0096)
    fig4 = figs.training_gap_figure([25, 50], [0.01, 0.005], [25, 50], [0.02, 0.015], 0.0096)
    for f in (fig, fig2, fig4):
        assert f.get_figwidth() <= figs.COLUMN_INCHES
        matplotlib.pyplot.close(f)


def test_unclipped_mse_keeps_values_outside_the_unit_range():
    a = torch.tensor([[[[1.5, -0.5]]]])
    assert figs.unclipped_mse(a, torch.zeros_like(a)) == pytest.approx(1.25)


def test_noise_explorer_draws_each_kind_at_its_level():
    x = clean()
    e = noise_widget.noise_explorer({"img": x})
    assert e.kind == "Gaussian" and e.level == 25.0 and e.model == Gaussian(25 / 255)
    y = e.noisy()
    assert torch.equal(y, e.noisy())                      # cached, same draw
    assert "σ = 25/255" in e.caption() and "dB" in e.caption()
    e.set("Poisson")
    assert e.model == Poisson(30.0) and not torch.equal(e.noisy(), y)
    e.set("speckle", 0.2)
    assert e.model == Speckle(0.2)
    fig = e.figure()
    assert "speckle noise, v = 0.2" in fig._suptitle.get_text()
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("kind,level,match", [("Gaussian", 255.0, "0–255"), ("Poisson", 0.0, "λ"),
                                              ("laplace", None, "unknown")])
def test_noise_explorer_refuses_bad_settings(kind, level, match):
    e = noise_widget.noise_explorer({"img": clean()})
    with pytest.raises(ValueError, match=match):
        e.set(kind, level)


def test_noise_explorer_needs_an_image():
    with pytest.raises(ValueError, match="at least one"):
        noise_widget.noise_explorer({})


def test_noise_explorer_show_builds_live_controls_or_a_static_note(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs: shown.extend(objs))
    e = noise_widget.noise_explorer({"img": clean()})
    monkeypatch.delenv("DENOISE_STATIC_OUTPUTS", raising=False)
    e.show()
    import ipywidgets as w

    box = next(o for o in shown if isinstance(o, w.VBox))
    kind, level = box.children[0].children[1], box.children[1]
    kind.value = "speckle"                                 # re-ranges the slider, redraws
    assert (level.min, level.max, level.value) == (0.01, 0.5, 0.1) and e.kind == "speckle"
    shown.clear()
    monkeypatch.setenv("DENOISE_STATIC_OUTPUTS", "1")
    e.show()
    assert "default state" in shown[0].data
    assert np.isfinite(e.level)
