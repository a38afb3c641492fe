"""Course helpers of the "Denoise your own images" and Part 7/8 notebooks: the in-kernel
``denoise-lib`` command runner and the side-by-side comparison figure."""
from __future__ import annotations

import pytest
import torch

from denoise_lib.course.commands import RUN_CACHE_PLACEHOLDER, shell


def test_shell_runs_the_command_line_in_process(monkeypatch, tmp_path, capsys):
    from denoise_lib import course

    cache = tmp_path / "cache"
    monkeypatch.setenv(course.RUN_CACHE_ENV, str(cache))
    monkeypatch.chdir(tmp_path)
    shell("denoise-lib methods")
    out = capsys.readouterr().out
    assert out.startswith("$ denoise-lib methods\n") and "nb2nb" in out
    # the run cache and the working folder are not shown as local paths
    from denoise_lib.course.commands import _hide, _placeholders

    pairs = _placeholders({"/opt/secret": "<data>"})
    assert _hide(f"{cache}/model.pt and {tmp_path}/noisy/a.png in /opt/secret/b", pairs) == \
        f"{RUN_CACHE_PLACEHOLDER}/model.pt and noisy/a.png in <data>/b"
    with pytest.raises(ValueError, match="denoise-lib"):
        shell("rm -rf /")
    with pytest.raises(RuntimeError, match="exited with status 2"):
        shell("denoise-lib denoise --method nope nothing-here --out x")


def test_compare_shows_an_html_figure_with_alt_text(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from denoise_lib.course import plots

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    clean = torch.rand(1, 1, 16, 16)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    assert plots.compare({"noisy": noisy, "clean": clean}, reference=clean, title="t") is None
    html = shown[-1].data
    assert html.startswith("<figure") and 'alt="t: 2 images side by side: noisy, ' in html and " dB; clean." in html
    width = int(html.split('width="')[1].split('"')[0])
    assert width <= 100 * plots.MAX_WIDTH                                   # fits the text column
    plots.compare({f"p{i}": clean for i in range(6)}, size=3.2, alt="six panels", caption="c")
    assert 'alt="six panels"' in shown[-1].data and "<figcaption>c</figcaption>" in shown[-1].data
