"""The notebooks' explorer: static figure, caption, upload, and refusals."""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
import torch

from denoise_lib.course import widgets

matplotlib.use("Agg")


def images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 24, 32, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, y


def test_the_figure_shows_the_current_choice_and_its_psnr():
    x, y = images()
    calls = []

    def smooth(z, s):
        calls.append(s)
        return torch.nn.functional.avg_pool2d(z, 3, 1, 1, count_include_pad=False)

    e = widgets.denoise_explorer({"a": y}, {"box": smooth, "identity": lambda z, s: z}, sigma=0.1, clean={"a": x})
    fig = e.figure()
    assert "box" in fig._suptitle.get_text() and "PSNR" in fig._suptitle.get_text()
    e.figure()
    assert calls == [0.1]                                  # cached
    e.method, e.sigma = "identity", 0.2
    assert "strength σ = 51.0/255" in e.caption()
    assert torch.equal(e.result(), y)


def test_an_uploaded_file_becomes_an_image(tmp_path):
    from denoise_lib.image import write_image

    x, y = images()
    write_image(tmp_path / "mine.png", y)
    e = widgets.denoise_explorer({"a": y}, {"identity": lambda z, s: z}, sigma=0.05)
    e.add_upload("mine.png", (tmp_path / "mine.png").read_bytes())
    assert e.image == "mine.png" and e.images["mine.png"].shape == (1, 1, 24, 32)
    assert torch.allclose(e.images["mine.png"], (y * 255).round() / 255, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(sigma=25.0), dict(sigma=-0.1)])
def test_a_strength_outside_unit_range_is_refused(kw):
    _, y = images()
    with pytest.raises(ValueError, match="25/255"):
        widgets.denoise_explorer({"a": y}, {"identity": lambda z, s: z}, **kw)


def test_an_empty_explorer_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        widgets.denoise_explorer({}, {}, sigma=0.1)


def test_show_builds_the_live_controls(monkeypatch, capsys):
    _, y = images()
    e = widgets.denoise_explorer({"a": y}, {"identity": lambda z, s: z}, sigma=0.05)
    monkeypatch.delenv("DENOISE_STATIC_OUTPUTS", raising=False)
    e.show()                                   # builds the widgets and draws once
    monkeypatch.setenv("DENOISE_STATIC_OUTPUTS", "1")
    e.show()
    assert "figure above is its default state" in capsys.readouterr().out
