"""Course helpers of Parts 4–6: result tables, HTML figures, the λ_inv sweep and its explorer."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from denoise_lib.course import jinvariance  # noqa: E402
from denoise_lib.course.lambda_sweep import LambdaExplorer, SweepRun, bound_summary, sweep_figure  # noqa: E402
from denoise_lib.course.report import figure_html, image_grid, table  # noqa: E402
from denoise_lib.methods.noise2same import Noise2Same  # noqa: E402
from denoise_lib.models import UNet  # noqa: E402
from denoise_lib.noise import Gaussian  # noqa: E402

SIGMA = 25 / 255


def test_table_markdown_and_text():
    t = table(["name", "value", "ok"], [["a|b", 1.23456, True], ["c", None, False]], digits=[None, 2, None])
    md = t._repr_markdown_()
    assert md.splitlines()[0] == "| name | value | ok |"
    assert md.splitlines()[1] == "|:---|---:|---:|"
    assert "| a\\|b | 1.23 | yes |" in md and "| c | — | no |" in md
    assert "1.23" in str(t) and "a|b" in str(t)
    assert table(["x"], [[3]]).rows == [["3"]]                      # ints stay ints
    with pytest.raises(ValueError, match="cells"):
        table(["a", "b"], [["only one"]])
    with pytest.raises(ValueError, match="align"):
        table(["a"], [["x"]], align="q")


def test_figure_html_has_alt_text_and_caption():
    fig, ax = plt.subplots(figsize=(7, 2))
    ax.plot([0, 1])
    h = figure_html(fig, alt='a line "up"', caption="A <caption>")
    assert h.startswith("<figure") and 'alt="a line &quot;up&quot;"' in h and 'width="700"' in h
    assert "<figcaption>A &lt;caption&gt;</figcaption>" in h and "data:image/png;base64," in h
    with pytest.raises(ValueError, match="alt"):
        figure_html(fig, alt=" ")
    plt.close(fig)


def test_image_grid_layout():
    imgs = {f"p{i}": torch.rand(1, 1, 16, 24) for i in range(5)}
    imgs["map"] = torch.randn(1, 1, 16, 24)
    fig = image_grid(imgs, reference=imgs["p0"], cols=3, cmap={"map": ("RdBu", -1, 1)})
    assert fig.get_figwidth() == pytest.approx(7.0)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles[0] == "p0" and "dB" in titles[1] and "map" in titles
    plt.close(fig)


def _runs():
    g = torch.Generator().manual_seed(0)
    x = torch.rand((2, 1, 32, 32), generator=g) * 0.5 + 0.25
    runs, summaries = [], {}
    for label, spec in [("2σ", 2 * SIGMA), ("2·std", "2std"), ("2", 2.0)]:
        torch.manual_seed(0)
        m = Noise2Same(UNet(1, features=8, depth=2, residual=True), lambda_inv=spec).eval()
        hist = type("H", (), {"log": [{"lambda_inv": torch.tensor(0.5)}, {"lambda_inv": torch.tensor(0.7)}]})()
        runs.append(SweepRun(label, spec, m, hist, 20.0 + len(runs)))
        terms = jinvariance.bound_terms(m.net, x, Gaussian(SIGMA), n_masks=2,
                                        generator=torch.Generator().manual_seed(1))
        summaries[label] = bound_summary(terms, SIGMA, n_boot=50)
    return runs, summaries, x


def test_sweep_run_weight_and_bound_summary():
    runs, summaries, _ = _runs()
    assert runs[0].lam == pytest.approx(2 * SIGMA) and runs[1].lam == pytest.approx(0.6) and runs[2].lam == 2.0
    s = summaries["2σ"]
    assert s["u_2sigma"] == pytest.approx(s["R"] + 2 * SIGMA * s["I"], rel=1e-9)
    assert s["inv_2sigma"] == pytest.approx(2 * SIGMA * s["I"])
    assert s["gap_2sigma"] == pytest.approx(s["u_2sigma"] - s["lhs"])
    assert s["gap_2sigma_lo"] <= s["gap_2sigma"] <= s["gap_2sigma_hi"]


def test_sweep_figure_and_explorer(monkeypatch, capsys):
    runs, summaries, x = _runs()
    fig = sweep_figure(list(reversed(runs)), summaries, sigma=SIGMA, psnr_noisy=19.0)
    top = fig.axes[0]
    assert [t.get_text() for t in top.get_xticklabels()][0].startswith("2σ")   # sorted by weight
    plt.close(fig)
    ex = LambdaExplorer(runs, summaries, noisy=x[:1], clean=x[:1], sigma=SIGMA)
    assert ex.label == "2·std"                                                  # the library default first
    fig = ex.figure()
    assert "2·std" in fig.axes[1].get_title()
    plt.close(fig)
    fig = ex.figure("2")
    plt.close(fig)
    monkeypatch.setenv("DENOISE_STATIC_OUTPUTS", "1")
    ex.show()
    assert "default state" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no run"):
        LambdaExplorer(runs, summaries, noisy=x[:1], clean=x[:1], sigma=SIGMA, label="7")
