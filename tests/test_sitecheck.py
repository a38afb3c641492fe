"""The site check (``python -m denoise_lib.course sitecheck``) on tiny synthetic sites.

Each test writes a site with exactly one kind of defect and checks that the real
browser check flags it (and nothing of another kind); a clean site passes. The pages
load MathJax from the same CDN address as the built book, so the local MathJax route
is tested too. One Chromium session serves the whole module.

Needs Chromium, chromedriver, Selenium and MathJax 3 (``.ci/run`` installs them): a
missing tool FAILS these tests with what to install; they never skip.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from denoise_lib.course import sitecheck

REPO = {"url": "https://github.com/example-org/example-course", "branch": "main", "path_to_book": "",
        "colab_url": "https://colab.research.google.com"}
GOOD_COLAB = "https://colab.research.google.com/github/example-org/example-course/blob/main/notebooks/nb.ipynb"

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ margin: 0; font: 16px sans-serif; }} article.bd-article {{ width: 640px; margin: 0 auto; }}</style>
{css}
<script>window.MathJax = {{"tex": {{"macros": {{"E": "\\\\mathbb{{E}}"}}}},
  "options": {{"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"}}}}</script>
<script defer="defer" src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>
</head><body class="tex2jax_ignore mathjax_ignore"><main><article class="bd-article" role="main">
{body}
</article></main></body></html>
"""

CLEAN = r"""
<section id="intro"><h1>A clean page</h1>
<p>Inline math <span class="math notranslate nohighlight">\(\E[\mathbf{y}] = \frac{1}{2}\)</span> and a
display equation:</p>
<div class="math notranslate nohighlight" id="equation-one">\[\hat{x} = \arg\min_x \|x - y\|^2\]</div>
<p>A figure: <img src="_images/plot.png" alt="Noisy and denoised versions of one test image"></p>
<p>Links: <a href="page2.html#target">to a section</a>, <a href="#intro">to the top</a>,
<a href="https://example.org/">to another site</a>, <a href="mailto:someone@example.org">mail</a>.</p>
<div class="pst-scrollable-table-container" style="overflow-x: auto"><table style="width: 1400px"><tr><td>wide table that scrolls</td></tr></table></div>
<div class="highlight"><pre>code with $dollars$ and \frac{a}{b} is code, not math</pre></div>
<div class="cell_output docutils container"><div class="output stream highlight-myst-ansi notranslate"><div class="highlight"><pre>epoch 1: loss 0.1</pre></div></div></div>
</section>
"""


def write_site(root: Path, pages: dict[str, str], *, notebook: str | None = None, css: str = "") -> Path:
    """A site in ``root``: ``pages`` maps a page path to the HTML of its article."""
    pages = {"index.html": CLEAN, "page2.html": '<section id="target"><h1>Page two</h1><p>Text.</p></section>', **pages}
    for name, body in pages.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PAGE.format(title=name, css=css, body=body), encoding="utf-8")
    images = root / "_images"
    images.mkdir(exist_ok=True)
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 60, 60)).save(images / "plot.png")
    Image.new("RGB", (40, 30), (60, 60, 200)).save(images / "3f9a0c1d2e4b5a6978877665544332211aabbccddeeff00112233445566778899.png")
    if notebook:
        src = root / "_sources" / notebook
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def browser():
    try:
        sitecheck.find_mathjax()
        b = sitecheck.Browser()
    except sitecheck.SiteCheckUnavailable as err:
        pytest.fail(f"the site check cannot run here: {err}", pytrace=False)
    yield b
    b.close()


def check(browser, root: Path, **kw) -> sitecheck.Report:
    return sitecheck.check_site(root, browser=browser, repo=REPO, mathjax_wait_s=15, **kw)


def kinds(report) -> set[str]:
    return {d.kind for d in report.defects}


def test_clean_site_passes(browser, tmp_path):
    report = check(browser, write_site(tmp_path, {}))
    assert report.defects == [], "\n".join(map(str, report.defects))
    assert sorted(report.pages) == ["index.html", "page2.html"]


def test_unrendered_tex(browser, tmp_path):
    site = write_site(tmp_path, {"tex.html": r"<p>The loss is $\frac{1}{2}\|x - y\|^2$ per pixel.</p>"})
    report = check(browser, site, pages=["tex.html"])
    assert kinds(report) == {"tex"}, report.defects
    assert "frac" in report.defects[0].detail


def test_mathjax_error_and_undefined_macro(browser, tmp_path):
    body = (r'<p>Broken: <span class="math notranslate nohighlight">\(\frac{1}\)</span>.</p>'
            r'<p>Unknown macro: <span class="math notranslate nohighlight">\(\nosuchmacro + x\)</span>.</p>')
    report = check(browser, write_site(tmp_path, {"mj.html": body}), pages=["mj.html"])
    assert kinds(report) == {"mathjax"}, report.defects
    details = " ".join(d.detail for d in report.defects)
    assert "Missing argument for \\frac" in details and "\\nosuchmacro" in details


def test_clipped_and_protruding_content(browser, tmp_path):
    body = ('<div class="admonition" style="overflow: hidden"><p style="width: 1200px">a paragraph wider than '
            'its clipping box</p></div>'
            '<p style="white-space: nowrap">' + "a line that never wraps " * 20 + "</p>")
    report = check(browser, write_site(tmp_path, {"wide.html": body}), pages=["wide.html"])
    assert kinds(report) == {"overflow"}, report.defects
    assert len(report.defects) == 2, report.defects


def test_wide_display_equation_scrolls_with_course_css(browser, tmp_path):
    eq = r'<div class="math notranslate nohighlight">\[' + " + ".join(f"a_{{{i}}} b_{{{i}}}" for i in range(60)) + r"\]</div>"
    bare = check(browser, write_site(tmp_path / "bare", {"eq.html": eq}), pages=["eq.html"])
    assert kinds(bare) == {"overflow"}, bare.defects
    css_file = Path(__file__).resolve().parents[1] / "book" / "_static" / "course.css"
    css = '<link rel="stylesheet" href="course.css">'
    site = write_site(tmp_path / "styled", {"eq.html": eq}, css=css)
    (site / "course.css").write_text(css_file.read_text(encoding="utf-8"), encoding="utf-8")
    styled = check(browser, site, pages=["eq.html"])
    assert styled.defects == [], styled.defects
    assert any("scrolls sideways" in n.detail for n in styled.notes)


@pytest.mark.parametrize("img, expect", [
    ('<img src="_images/missing.png" alt="A plot of the loss">', "does not load"),
    ('<img src="_images/plot.png">', "no alt attribute"),
    ('<img src="_images/plot.png" alt="">', "empty alt"),
    ('<img src="_images/3f9a0c1d2e4b5a6978877665544332211aabbccddeeff00112233445566778899.png" '
     'alt="_images/3f9a0c1d2e4b5a6978877665544332211aabbccddeeff00112233445566778899.png">', "file name"),
])
def test_image_defects(browser, tmp_path, img, expect):
    report = check(browser, write_site(tmp_path, {"img.html": f"<p>{img}</p>"}), pages=["img.html"])
    image = [d for d in report.defects if d.kind == "image"]
    assert len(image) == 1 and expect in image[0].detail, report.defects
    assert kinds(report) <= {"image", "console"}  # a missing file is also a failed request


def test_broken_internal_links(browser, tmp_path):
    body = ('<p><a href="nowhere.html">a missing page</a>, <a href="page2.html#no-such-anchor">a missing anchor</a>, '
            '<a href="#not-here">a missing anchor on this page</a>, <a href="page2.html#target">a good one</a>.</p>')
    report = check(browser, write_site(tmp_path, {"links.html": body}))
    assert kinds(report) == {"link"}, report.defects
    assert sorted(d.detail.split(": ", 1)[1] for d in report.defects) == ["#not-here", "nowhere.html", "page2.html#no-such-anchor"]
    assert {d.page for d in report.defects} == {"links.html"}


def test_console_error(browser, tmp_path):
    body = '<p>Text.</p><script>undefinedFunctionOfThisPage();</script>'
    report = check(browser, write_site(tmp_path, {"js.html": body}), pages=["js.html"])
    assert kinds(report) == {"console"}, report.defects
    assert "undefinedFunctionOfThisPage" in report.defects[0].detail


@pytest.mark.parametrize("cls", ["stderr", "traceback"])
def test_error_output_block(browser, tmp_path, cls):
    body = (f'<div class="cell docutils container"><div class="cell_output docutils container">'
            f'<div class="output {cls} highlight-myst-ansi notranslate"><div class="highlight"><pre>'
            f'UserWarning: something went wrong</pre></div></div></div></div>')
    report = check(browser, write_site(tmp_path, {"out.html": body}), pages=["out.html"])
    assert kinds(report) == {"stderr"}, report.defects
    assert "something went wrong" in report.defects[0].detail


@pytest.mark.parametrize("link, expect", [
    (None, "no Colab launch link"),
    (GOOD_COLAB.replace("/main/", "/dev/"), "should be"),
    (GOOD_COLAB.replace("nb.ipynb", "other.ipynb"), "should be"),
])
def test_colab_link(browser, tmp_path, link, expect):
    a = f'<a href="{link}">Colab</a>' if link else ""
    site = write_site(tmp_path, {"notebooks/nb.html": f"<h1>A notebook</h1>{a}"}, notebook="notebooks/nb.ipynb")
    report = check(browser, site, pages=["notebooks/nb.html"])
    assert kinds(report) == {"colab"}, report.defects
    assert expect in report.defects[0].detail and GOOD_COLAB in report.defects[0].detail


def test_good_colab_link_passes(browser, tmp_path):
    site = write_site(tmp_path, {"notebooks/nb.html": f'<h1>A notebook</h1><a href="{GOOD_COLAB}">Colab</a>'},
                      notebook="notebooks/nb.ipynb")
    assert check(browser, site, pages=["notebooks/nb.html"]).defects == []


def test_colab_url_follows_config(tmp_path):
    cfg = tmp_path / "_config.yml"
    cfg.write_text("repository:\n  url: https://github.com/a/b\n  branch: dev\n  path_to_book: book\n"
                   "launch_buttons:\n  colab_url: https://colab.research.google.com\n", encoding="utf-8")
    repo = sitecheck.repository_config(cfg)
    assert sitecheck.colab_url("notebooks/x.ipynb", repo) == \
        "https://colab.research.google.com/github/a/b/blob/dev/book/notebooks/x.ipynb"


def test_command_line_exit_status(browser, tmp_path, capsys):
    """The command exits 1 and names page and defect; 0 on a clean site; 2 without a built site."""
    from denoise_lib.course import main

    bad = write_site(tmp_path / "bad", {"tex.html": r"<p>$\alpha$ unrendered</p>"})
    good = write_site(tmp_path / "good", {})
    cfg = tmp_path / "_config.yml"
    cfg.write_text("repository:\n  url: https://github.com/a/b\n  branch: main\n", encoding="utf-8")
    assert main(["sitecheck", str(bad), "--config", str(cfg), "--pages", "tex.html"]) == 1
    out = capsys.readouterr().out
    assert "tex.html" in out and "[tex]" in out
    assert main(["sitecheck", str(good), "--config", str(cfg)]) == 0
    assert main(["sitecheck", str(tmp_path / "nothing-built"), "--config", str(cfg)]) == 2
