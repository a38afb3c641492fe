"""The built book as a reader sees it: every page opened in headless Chromium.

``python -m denoise_lib.course sitecheck [_build/html]`` serves the built HTML on
127.0.0.1, opens every page in Debian's Chromium (driven by Selenium through the
system's ``chromedriver``; nothing is downloaded) with MathJax 3 served from a local
copy (the pages load it from a CDN, which CI cannot reach: the server rewrites that
address), lets MathJax typeset, opens every collapsed solution and ``<details>``
block, and reports, page by page, each of these defects:

``tex``        unrendered TeX in the page's text (``$…$``, ``\\frac``, ``\\(``, …),
               outside code blocks;
``mathjax``    a MathJax error (``merror`` / "Math input error"), an undefined
               macro (MathJax shows it as red ``\\name``), or MathJax not loading on a
               page with math;
``overflow``   content wider than its box without a scroll bar (a block whose
               ``scrollWidth`` exceeds its ``clientWidth`` while its ``overflow-x`` is
               neither ``auto`` nor ``scroll``), or an element that sticks out of the
               main text column outside any scrolling box;
``image``      an image that does not load (``naturalWidth`` 0), or whose ``alt`` text
               is missing, empty, generic or just a (hashed) file name;
``link``       an internal link to a file or an anchor (``#id``) that the site lacks;
``console``    a ``SEVERE`` entry in the browser's console log (a JavaScript error, a
               resource of the site that fails to load);
``stderr``     an error, traceback or stderr output block of a notebook cell
               (MyST-NB's ``.output.stderr``, ``.output.traceback``);
``colab``      a notebook page whose Colab launch link is missing or does not point at
               that notebook under ``repository.url`` / ``repository.branch`` of
               ``_config.yml``.

Every address outside 127.0.0.1 is blocked in the browser, so that the check gives
the same answer with and without a network: console errors of blocked external
resources are notes, not defects, and links to other sites are not followed. Notes
also list what scrolls sideways (long equations, wide tables), for authors to break.

Needs (CI installs them, see ``.ci/run``): ``apt-get install chromium chromium-driver``,
``pip install selenium``, and MathJax 3 from npm in ``$DENOISE_MATHJAX_DIR``
(default ``~/.cache/denoise_lib/mathjax``): ``npm install --prefix DIR mathjax@3``.
This module is course tooling: the notebooks never import it.
"""
from __future__ import annotations

import argparse
import html
import http.server
import io
import json
import os
import posixpath
import re
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

__all__ = ["Defect", "Report", "Browser", "SiteServer", "check_site", "find_mathjax", "find_chromium",
           "repository_config", "main", "KINDS", "MATHJAX_ENV", "INSTALL_HELP"]

KINDS = ("tex", "mathjax", "overflow", "image", "link", "console", "stderr", "colab")
MATHJAX_ENV = "DENOISE_MATHJAX_DIR"
MATHJAX_VERSION = "3.2.2"
MATHJAX_PREFIX = "/__sitecheck_mathjax__/"
INSTALL_HELP = (
    "The site check needs Chromium, its driver, Selenium and a local MathJax 3:\n"
    "  apt-get install -y chromium chromium-driver\n"
    "  pip install -r requirements.txt            # selenium\n"
    f"  npm install --prefix ~/.cache/denoise_lib/mathjax mathjax@{MATHJAX_VERSION}"
    f"   # or any folder, named in ${MATHJAX_ENV}"
)
# The CDN address Sphinx writes for MathJax 3, e.g. https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js
_MATHJAX_SRC = re.compile(r"""(["'])(?:https?:)?//[^"']*?mathjax(?:@[\w.\-]+)?/(es5/[^"'?#]+)(?:[?#][^"']*)?\1""", re.I)
_IMAGE_NAME = re.compile(r"[\w.\-/\\]*\.(png|jpe?g|gif|svg|webp|bmp|tiff?)", re.I)
_GENERIC_ALT = {"image", "img", "figure", "fig", "picture", "plot", "png", "output", "graph", "chart", "photo"}


class SiteCheckUnavailable(RuntimeError):
    """Chromium, chromedriver, Selenium or MathJax is missing (the message says what to install)."""


@dataclass
class Defect:
    page: str       # the page's path in the site, e.g. "book/03_blind_spot_theory.html"
    kind: str       # one of KINDS
    detail: str

    def __str__(self):
        return f"{self.page}: [{self.kind}] {self.detail}"


@dataclass
class Report:
    pages: list = field(default_factory=list)
    defects: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.defects

    def by_page(self) -> dict:
        out: dict = {}
        for d in self.defects:
            out.setdefault(d.page, []).append(d)
        return out

    def kinds(self) -> set:
        return {d.kind for d in self.defects}

    def to_json(self) -> dict:
        return {"pages": self.pages, "seconds": round(self.seconds, 1),
                "defects": [asdict(d) for d in self.defects], "notes": [asdict(n) for n in self.notes]}


# --------------------------------------------------------------------------------------
# Tools


def find_mathjax(path: str | os.PathLike | None = None) -> Path:
    """The MathJax 3 package folder (the one holding ``es5/tex-mml-chtml.js``).

    ``path`` or ``$DENOISE_MATHJAX_DIR`` (default ``~/.cache/denoise_lib/mathjax``) may be
    the package itself or an npm prefix holding ``node_modules/mathjax``.
    Raises :class:`SiteCheckUnavailable` when it is not there.
    """
    base = Path(path or os.environ.get(MATHJAX_ENV) or Path.home() / ".cache" / "denoise_lib" / "mathjax").expanduser()
    for cand in (base, base / "node_modules" / "mathjax"):
        if (cand / "es5" / "tex-mml-chtml.js").is_file():
            return cand.resolve()
    raise SiteCheckUnavailable(f"MathJax 3 not found in {base}.\n{INSTALL_HELP}")


def find_chromium() -> tuple[str, str]:
    """(browser, driver) executables: ``$CHROME_BIN``/``$CHROMEDRIVER`` or Debian's."""
    browser = os.environ.get("CHROME_BIN") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        raise SiteCheckUnavailable(f"Chromium or chromedriver not found (browser={browser}, driver={driver}).\n{INSTALL_HELP}")
    return browser, driver


def repository_config(config: str | os.PathLike | None = None) -> dict:
    """``repository`` and ``launch_buttons`` settings of ``_config.yml`` (the repository root's by default)."""
    import yaml

    path = Path(config) if config else Path(__file__).resolve().parents[2] / "_config.yml"
    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    repo = dict(cfg.get("repository") or {})
    repo.setdefault("colab_url", (cfg.get("launch_buttons") or {}).get("colab_url", "https://colab.research.google.com"))
    return repo


def colab_url(rel_notebook: str, repo: dict) -> str:
    """The Colab address of a notebook (``rel_notebook``: its path in the book, e.g. ``notebooks/03_x.ipynb``)."""
    slug = re.sub(r"^https?://(www\.)?github\.com/", "", repo["url"].rstrip("/")).removesuffix(".git")
    book = (repo.get("path_to_book") or "").strip("/")
    path = f"{book}/{rel_notebook}" if book else rel_notebook
    return f"{repo.get('colab_url', 'https://colab.research.google.com').rstrip('/')}/github/{slug}/blob/{repo.get('branch', 'main')}/{path}"


# --------------------------------------------------------------------------------------
# The local web server


class _Handler(http.server.SimpleHTTPRequestHandler):
    site: Path
    mathjax: Path
    missing: list

    def log_message(self, *args):  # quiet
        pass

    def translate_path(self, path):
        p = unquote(urlsplit(path).path)
        if p.startswith(MATHJAX_PREFIX):
            root, p = self.mathjax, p[len(MATHJAX_PREFIX):]
        else:
            root = self.site
        parts = [x for x in posixpath.normpath(p).split("/") if x and x not in (".", "..")]
        return str(root.joinpath(*parts))

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if not path.exists():
            if urlsplit(self.path).path == "/favicon.ico":  # asked by the browser, not by the book
                self.send_response(204)
                self.end_headers()
                return None
            self.missing.append(urlsplit(self.path).path)
        if path.suffix == ".html" and path.is_file():
            body = _MATHJAX_SRC.sub(lambda m: f"{m.group(1)}{MATHJAX_PREFIX}{m.group(2)}{m.group(1)}",
                                    path.read_text(encoding="utf-8", errors="replace")).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        return super().send_head()


class SiteServer:
    """Serves ``site`` on ``http://127.0.0.1:PORT/`` with MathJax's CDN address rewritten to ``mathjax``."""

    def __init__(self, site, mathjax):
        self.site, self.mathjax = Path(site).resolve(), Path(mathjax).resolve()
        self.missing: list = []
        handler = type("Handler", (_Handler,), {"site": self.site, "mathjax": self.mathjax, "missing": self.missing})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------------------
# The browser


class Browser:
    """Headless Chromium through Selenium and the system chromedriver (one per session; reuse it)."""

    def __init__(self, width: int = 1280, height: int = 900):
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError as err:
            raise SiteCheckUnavailable(f"selenium is not installed ({err}).\n{INSTALL_HELP}") from None
        browser, driver = find_chromium()
        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--disable-extensions", "--no-first-run", "--lang=en-US",
                    f"--window-size={width},{height}", "--force-device-scale-factor=1",
                    # nothing but this machine: the same answer with and without a network
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            self.driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
        except Exception as err:  # noqa: BLE001  (a driver/browser mismatch, a crash at start)
            raise SiteCheckUnavailable(f"Chromium did not start: {err}\n{INSTALL_HELP}") from None
        self.driver.set_page_load_timeout(60)
        self.driver.set_script_timeout(90)

    def close(self):
        self.driver.quit()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# What one page reports; run in the page after it loaded (arguments[0]: MathJax wait in ms).
_PAGE_JS = r"""
const done = arguments[arguments.length - 1];
const mjWait = arguments[0];
const sleep = ms => new Promise(r => setTimeout(r, ms));
const cut = (s, a, b) => Array.from(s || '').slice(a, b).join('');  // whole code points only
(async () => {
  const out = {mathjax: null, mathjaxError: null, tex: [], merror: [], overflow: [], images: [],
               links: [], ids: [], stderr: [], colab: [], scrolls: []};
  // 1. MathJax: wait for its first typeset
  const hasMath = !!document.querySelector('script[src*="mathjax" i], .math, span.math, div.math');
  out.hasMath = hasMath;
  out.readyState = document.readyState;
  const t0 = Date.now();
  if (hasMath) {
    while (!(window.MathJax && window.MathJax.version && window.MathJax.startup && window.MathJax.startup.promise)
           && Date.now() - t0 < mjWait) await sleep(50);
    if (window.MathJax && window.MathJax.version) {
      out.mathjax = window.MathJax.version;
      try { await window.MathJax.startup.promise; } catch (e) { out.mathjaxError = String(e); }
    }
  }
  out.mathjaxWaitMs = Date.now() - t0;
  // 2. open every collapsed block (solutions, <details>, hidden cells) and load every image
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.race([Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r, {once: true}); i.addEventListener('error', r, {once: true}); }))), sleep(10000)]);
  await sleep(400);  // toggle transitions
  const col = document.querySelector('article.bd-article') || document.querySelector('main') ||
              document.querySelector('[role="main"]') || document.body;
  const desc = e => {
    let s = e.tagName.toLowerCase();
    if (e.id) s += '#' + e.id;
    const cls = (typeof e.className === 'string' ? e.className : '').trim().split(/\s+/).filter(Boolean).slice(0, 3);
    if (cls.length) s += '.' + cls.join('.');
    const anc = e.closest('[id]:not(#' + CSS.escape(e.id || '_') + ')');
    if (anc && anc !== e) s += ' in #' + anc.id;
    const txt = cut((e.innerText || e.textContent || '').replace(/\s+/g, ' ').trim(), 0, 80);
    return txt ? s + ' "' + txt + '"' : s;
  };
  // 3. unrendered TeX: the text of each block, outside code and rendered math
  const SKIP = 'script,style,noscript,template,pre,code,kbd,samp,textarea,mjx-container,.highlight,.MathJax,svg';
  const blocks = new Map();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(SKIP)) continue;
    let b = el;
    while (b && b !== document.body && getComputedStyle(b).display.startsWith('inline')) b = b.parentElement;
    blocks.set(b, (blocks.get(b) || '') + n.textContent);
  }
  const TEX = [/\\[()[\]]/, /\$\$/, /(?<![\w$\\])\$(?=\S)[^$\n]{0,300}?[^\s$\\]\$(?!\w)/, /(?<![\w$\\])\$[^\s$]\$/,
               /\\[A-Za-z]{2,}/, /[A-Za-z0-9)\]}][_^]\{/];
  for (const [b, text] of blocks) {
    for (const re of TEX) {
      const m = text.match(re);
      if (m) {
        const before = Array.from(text.slice(0, m.index)), hit = Array.from(m[0]), after = Array.from(text.slice(m.index + m[0].length));
        out.tex.push(desc(b).split(' "')[0] + ': …' + (before.slice(-30).join('') + hit.join('') + after.slice(0, 30).join('')).replace(/\s+/g, ' ') + '…');
        break;
      }
    }
  }
  // 4. MathJax errors ("Math input error": merror) and undefined macros (red \name)
  for (const c of document.querySelectorAll('mjx-container')) {
    const where = c.parentElement ? ' in ' + cut(desc(c.parentElement), 0, 120) : '';
    for (const e of c.querySelectorAll('mjx-merror'))
      out.merror.push(cut(e.getAttribute('data-mjx-error') || e.textContent || 'error', 0, 200) + where);
    for (const e of c.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]'))
      out.merror.push('undefined control sequence ' + cut(e.textContent, 0, 60) + where);
  }
  // 5. overflow inside the text column
  const colR = col.getBoundingClientRect();
  const scrolls = e => { const o = getComputedStyle(e).overflowX; return o === 'auto' || o === 'scroll'; };
  const INTENDED = '.margin, .sidebar, aside, .full-width, .headerlink, .toggle-button, mjx-assistive-mml, .visually-hidden, .sr-only';
  const inScroller = e => { for (let p = e.parentElement; p && p !== col; p = p.parentElement) if (scrolls(p)) return true; return false; };
  // scrollWidth also counts boxes that are clipped on purpose (MathJax's assistive MathML): confirm
  // that some visible descendant (element or text) really reaches past [lo, hi]
  const sticksOut = (e, lo, hi) => {
    const w = document.createTreeWalker(e, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    for (let c = w.nextNode(); c; c = w.nextNode()) {
      const el = c.nodeType === 1 ? c : c.parentElement;
      if (el.closest('mjx-assistive-mml, .visually-hidden, .sr-only')) continue;
      let q;
      if (c.nodeType === 1) q = c.getBoundingClientRect();
      else { if (!c.textContent.trim()) continue; range.selectNodeContents(c); q = range.getBoundingClientRect(); }
      if ((q.width || q.height) && (q.right > hi + 1 || q.left < lo - 1)) return true;
    }
    return false;
  };
  const clientBox = e => { const r = e.getBoundingClientRect(); return [r.left + e.clientLeft, r.left + e.clientLeft + e.clientWidth]; };
  // A: a box that clips its content (overflow-x hidden/clip), or whose visible overflow leaves
  //    the text column; B: an element that lies partly outside the text column
  const A = [], B = [];
  for (const e of [col, ...col.querySelectorAll('*')]) {
    const p = e.parentElement;
    if (e !== col && p && p.tagName !== 'MJX-CONTAINER' && p.closest('mjx-container')) continue;  // MathJax's inner boxes
    if (e.closest(INTENDED)) continue;
    const st = getComputedStyle(e);
    if (st.display === 'none' || st.display === 'contents' || st.position === 'fixed' || st.visibility === 'hidden') continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (inScroller(e)) continue;
    if (st.display !== 'inline' && !/^table-(row|cell|column)/.test(st.display) &&
        e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0 && !scrolls(e)) {
      const clips = st.overflowX === 'hidden' || st.overflowX === 'clip';
      const [lo, hi] = clips ? clientBox(e) : [colR.left, colR.right];
      if (sticksOut(e, lo, hi)) { e.__clips = clips; A.push(e); }
    }
    if (e !== col && (r.right > colR.right + 1 || r.left < colR.left - 1)) B.push(e);
  }
  const isAnc = (a, list) => list.some(x => x !== a && a.contains(x));
  const hasAnc = (a, list) => list.some(x => x !== a && x.contains(a));
  // what scrolls sideways (no defect; listed so that long equations can be broken by hand)
  for (const e of col.querySelectorAll('div.math mjx-container, mjx-container[display="true"], span.math, table, .pst-scrollable-table-container, .cell_output .output'))
    if (scrolls(e) && e.scrollWidth > e.clientWidth + 1 && !inScroller(e) && sticksOut(e, ...clientBox(e)))
      out.scrolls.push(desc(e) + ` (${e.scrollWidth} px in ${e.clientWidth} px)`);
  for (const e of A) if (!isAnc(e, A))
    out.overflow.push(desc(e) + (e.__clips
      ? ` (clipped: content ${e.scrollWidth} px in a box of ${e.clientWidth} px with overflow-x: ${getComputedStyle(e).overflowX})`
      : ` (runs out of the text column: content ${e.scrollWidth} px in a box of ${e.clientWidth} px, overflow-x: visible)`));
  for (const e of B) if (!hasAnc(e, A) && !hasAnc(e, B)) {
    const r = e.getBoundingClientRect();
    out.overflow.push(desc(e) + ` (spans ${Math.round(r.left)}–${Math.round(r.right)} px, the text column ${Math.round(colR.left)}–${Math.round(colR.right)} px)`);
  }
  // 6. images, links, anchors, error outputs, Colab links
  for (const i of imgs) out.images.push({src: i.getAttribute('src') || '', url: i.currentSrc || i.src, alt: i.getAttribute('alt'),
                                         width: i.naturalWidth, shown: Math.round(i.getBoundingClientRect().width),
                                         complete: i.complete});
  document.querySelectorAll('a[href]').forEach(a => out.links.push([a.getAttribute('href'), a.href]));
  document.querySelectorAll('[id]').forEach(e => out.ids.push(e.id));
  document.querySelectorAll('a[name]').forEach(e => out.ids.push(e.getAttribute('name')));
  const errs = new Set(document.querySelectorAll('.output.stderr, .output.traceback, .output.error, .cell_output .stderr, .cell_output .traceback, .cell_output .error'));
  for (const e of errs) if (![...errs].some(x => x !== e && x.contains(e)))
    out.stderr.push((typeof e.className === 'string' ? e.className : '') + ': ' + cut((e.textContent || '').replace(/\s+/g, ' ').trim(), 0, 160));
  document.querySelectorAll('a[href*="colab.research.google.com"]').forEach(a => out.colab.push(a.href));
  return JSON.stringify(out);
})().then(done, e => done(JSON.stringify({fatal: String(e && e.stack || e)})));
"""


def _alt_problem(alt, src: str) -> str | None:
    if alt is None:
        return "no alt attribute"
    a = alt.strip()
    if not a:
        return "empty alt text"
    base = posixpath.basename(unquote(urlsplit(src).path))
    if a == src or a == base or posixpath.basename(a) == base or _IMAGE_NAME.fullmatch(a) or re.fullmatch(r"[0-9a-f]{16,}", a):
        return f"alt text is a file name ({a[:60]!r})"
    if a.lower().strip(" .") in _GENERIC_ALT:
        return f"generic alt text ({a!r})"
    return None


_REFRESH = re.compile(r"""<meta\s+http-equiv=["']?refresh["']?\s+content=["']\s*\d+\s*;\s*url=([^"']+)["']""", re.I)


def _redirect_target(path: Path) -> str | None:
    """The target of a page that only redirects (``<meta http-equiv="refresh">`` and no body), else None."""
    if not path.is_file() or path.stat().st_size > 2000:
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    m = _REFRESH.search(text)
    return m.group(1).strip() if m and "<body" not in text.lower() else None


def _pages(site: Path) -> list[str]:
    skip = ("_static", "_sources", "_images", "_downloads", "_sphinx_design_static")
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                  if not any(part in skip or part.startswith(".") for part in p.relative_to(site).parts))


def check_site(site, *, browser: Browser | None = None, mathjax=None, repo: dict | None = None,
               config=None, pages: list[str] | None = None, mathjax_wait_s: float = 20.0,
               screenshots=None, log=None) -> Report:
    """Open every page of the built site ``site`` (a folder of HTML) and list its defects.

    ``browser``: a :class:`Browser` to reuse (else one is started and closed);
    ``mathjax``: the MathJax folder (else :func:`find_mathjax`); ``repo``: the
    ``repository`` settings for the Colab check (else read from ``config``, by default
    the repository's ``_config.yml``); ``pages``: paths in the site (default: every
    ``*.html`` outside ``_static``/``_sources``/``_images``). Raises
    :class:`SiteCheckUnavailable` when a tool is missing, ``FileNotFoundError`` when
    ``site`` has no ``index.html``.
    """
    t0 = time.perf_counter()
    site = Path(site).resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} has no index.html: build the book first (python -m denoise_lib.course build)")
    mj = find_mathjax(mathjax)
    repo = repo if repo is not None else repository_config(config)
    pages = pages if pages is not None else _pages(site)
    own = browser or Browser()
    report = Report(pages=list(pages))
    found: dict[str, dict] = {}
    try:
        with SiteServer(site, mj) as server:
            drv = own.driver
            for page in pages:
                t = time.perf_counter()
                drv.get_log("browser")  # drop what the previous page left
                start_missing = len(server.missing)
                redirect = _redirect_target(site / page)
                if redirect is not None:  # a bare <meta http-equiv="refresh"> page (the site's index.html)
                    found[page] = {"links": [(redirect, urljoin(server.url + page, redirect))], "ids": []}
                    continue
                res = None
                for attempt in range(2):  # a second try for a page whose check was cut short
                    try:
                        drv.get(server.url + page)
                        res = json.loads(drv.execute_async_script(_PAGE_JS, int(mathjax_wait_s * 1000)))
                    except Exception as err:  # noqa: BLE001  (a page that hangs or crashes the tab)
                        res = {"fatal": f"page did not load or check: {str(err).splitlines()[0]}"}
                    if "fatal" not in res and not (res.get("hasMath") and not res.get("mathjax")):
                        break
                    if attempt == 0:  # once more; say why, in case the second try shows it again
                        report.notes.append(Defect(page, "console", "checked twice: " + (
                            res["fatal"][:200] if "fatal" in res else
                            f"MathJax had not started after {res.get('mathjaxWaitMs')} ms "
                            f"(document {res.get('readyState')})")))
                    drv.get_log("browser")
                if screenshots:
                    Path(screenshots).mkdir(parents=True, exist_ok=True)
                    drv.save_screenshot(str(Path(screenshots) / (page.replace("/", "__") + ".png")))
                logs = drv.get_log("browser")
                found[page] = res
                _judge(page, res, logs, server, start_missing, site, repo, report)
                if log:
                    log(f"  {page}: {sum(d.page == page for d in report.defects)} defects ({time.perf_counter() - t:.1f} s)")
            _judge_links(found, server.url, site, report)
    finally:
        if browser is None:
            own.close()
    report.seconds = time.perf_counter() - t0
    return report


def _judge(page, res, logs, server, start_missing, site, repo, report):
    add = lambda kind, detail: report.defects.append(Defect(page, kind, detail))  # noqa: E731
    note = lambda kind, detail: report.notes.append(Defect(page, kind, detail))  # noqa: E731
    if "fatal" in res:
        add("console", "the page check failed twice: " + res["fatal"][:300])
        return
    for t in res["tex"]:
        add("tex", "unrendered TeX in " + t)
    if res["mathjax"] is None and any(d.kind == "tex" and d.page == page for d in report.defects):
        add("mathjax", "MathJax did not load on a page with math")
    if res["mathjaxError"]:
        add("mathjax", "MathJax failed: " + res["mathjaxError"][:200])
    for m in res["merror"]:
        add("mathjax", m if m.startswith("undefined") else "Math input error: " + m)
    for o in res["overflow"]:
        add("overflow", o)
    for o in res.get("scrolls", []):
        note("overflow", "scrolls sideways: " + o)
    local = server.url.rstrip("/")
    for img in res["images"]:
        url = img["url"]
        if not url.startswith(local) and not url.startswith("data:"):
            note("image", f"external image not checked offline: {url}")
        elif not img["width"]:
            add("image", f"image does not load: {img['src']}")
        elif img.get("shown") and img["width"] > 800 and img["shown"] < 0.5 * img["width"]:
            note("image", f"figure shown at {100 * img['shown'] // img['width']}% of its width "
                          f"({img['width']} px in {img['shown']} px; small text in it may be hard to read): {img['src'][:100]}")
        problem = _alt_problem(img["alt"], img["src"])
        if problem:
            add("image", f"{problem}: {img['src'][:100]}")
    for e in res["stderr"]:
        add("stderr", "error output shown: " + e)
    for entry in logs:
        if entry.get("level") != "SEVERE":
            continue
        msg = entry.get("message", "")
        urls = re.findall(r"https?://[^\s\"')]+", msg)
        if urls and not any(u.startswith(local) for u in urls[:1]):
            note("console", "external resource blocked offline: " + msg[:200])
        else:
            add("console", msg.replace(local, "")[:300])
    for path in server.missing[start_missing:]:
        if not any(path in d.detail for d in report.defects if d.page == page):
            add("console", f"the page asked for {path}, which the site lacks")
    source = site / "_sources" / (page[:-len(".html")] + ".ipynb")
    if source.is_file():
        want = colab_url(page[:-len(".html")] + ".ipynb", repo)
        if not res["colab"]:
            add("colab", f"no Colab launch link (expected {want})")
        for href in sorted(set(res["colab"])):
            if href != want:
                add("colab", f"Colab link {href} should be {want}")


def _judge_links(found, base, site, report):
    ids = {page: set(res["ids"]) for page, res in found.items() if "ids" in res and "fatal" not in res}
    for page, res in found.items():
        bad = set()
        for raw, url in res.get("links", []):
            if not url or raw.startswith(("mailto:", "javascript:", "tel:")):
                continue
            if not url.startswith(base):
                continue  # another site (not followed offline) or another scheme
            parts = urlsplit(url)
            path = unquote(parts.path).lstrip("/")
            target = site / path
            if path == "" or target.is_dir():
                path = posixpath.join(path, "index.html")
                target = site / path
            if not target.exists():
                bad.add(f"link to a missing file: {raw}")
                continue
            frag = unquote(parts.fragment)
            if frag and path.endswith(".html"):
                known = ids.get(path)
                if known is None:  # a page not opened (or whose check failed): its static ids
                    known = set(re.findall(r"""\b(?:id|name)=["']([^"']+)["']""", target.read_text(encoding="utf-8", errors="replace")))
                    known = {html.unescape(k) for k in known}
                    ids[path] = known
                if frag not in known:
                    bad.add(f"link to a missing anchor: {raw}")
        for b in sorted(bad):
            report.defects.append(Defect(page, "link", b))


def print_report(report: Report, file=None) -> None:
    file = file or sys.stdout
    for page, defects in report.by_page().items():
        print(f"{page}: {len(defects)} defect(s)", file=file)
        for d in defects:
            print(f"  [{d.kind}] {d.detail}", file=file)
    counts = {k: sum(d.kind == k for d in report.defects) for k in KINDS}
    summary = ", ".join(f"{k} {n}" for k, n in counts.items() if n) or "none"
    print(f"sitecheck: {len(report.pages)} pages, {len(report.defects)} defects ({summary}), "
          f"{len(report.notes)} notes, {report.seconds:.1f} s", file=file)


def main(argv=None, prog="python -m denoise_lib.course sitecheck") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("site", nargs="?", default="_build/html", help="the built HTML (default: _build/html)")
    p.add_argument("--config", default=None, help="_config.yml for the Colab check (default: the repository's)")
    p.add_argument("--mathjax", default=None, help=f"MathJax 3 folder (default: ${MATHJAX_ENV} or ~/.cache/denoise_lib/mathjax)")
    p.add_argument("--width", type=int, default=1280, help="browser window width in px (default 1280)")
    p.add_argument("--pages", nargs="*", default=None, help="only these pages (paths in the site)")
    p.add_argument("--json", default=None, help="also write the report here")
    p.add_argument("--notes", action="store_true", help="also print the notes (what scrolls sideways, external resources not checked)")
    p.add_argument("--screenshots", default=None, help="save a screenshot of each page in this folder")


def run(a) -> int:
    if not (Path(a.site) / "index.html").is_file():
        print(f"sitecheck: {a.site} has no index.html: build the book first (python -m denoise_lib.course build)",
              file=sys.stderr)
        return 2
    try:
        with Browser(width=a.width) as b:
            report = check_site(a.site, browser=b, mathjax=a.mathjax, config=a.config, pages=a.pages,
                                screenshots=a.screenshots, log=lambda s: print(s, flush=True))
    except SiteCheckUnavailable as err:
        print(f"sitecheck: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"sitecheck: {err}", file=sys.stderr)
        return 2
    if a.notes:
        for n in report.notes:
            print(f"note: {n}")
    print_report(report)
    if a.json:
        Path(a.json).write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
