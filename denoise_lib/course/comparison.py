"""Tables, plots and sentences of the comparison chapter (Part 9), read from the committed JSON.

Nothing here trains or denoises: every function reads the results files written by
:mod:`denoise_lib.compare` (``book/results/compare/<preset>/<configuration>.json``) and the
papers' numbers (``book/results/published.json``), so the notebook is fast and every number
it shows comes from those files.

* :func:`load` — the results of a preset (``cpu`` when it is there, else ``tiny``);
* :func:`noise_table` — one Markdown table per noise type, grey and colour side by side;
* :func:`equal_time` / :func:`equal_time_table` — each method's validation PSNR at the last
  logged point within the same time T (T: the whole budget of the cheapest learned method);
* :func:`plot_frontier` — validation PSNR against steps and against time, one curve per method;
* :func:`gap_table`, :func:`orderings`, :func:`ordering_table` — the papers' numbers beside
  ours, with the gap, and which orderings of methods agree with each paper;
* :func:`which_method_when` — the data one has → the method, with the measured reason.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np

from .. import compare

FRONTIER_PNG = compare.DEFAULT_OUT / "frontier.png"   # the frontier figure of the theory page

__all__ = ["FRONTIER_PNG", "load", "published", "noise_label", "NOISES", "noise_table", "cell_text", "equal_time", "equal_time_table",
           "frontier", "plot_frontier", "gap_rows", "gap_table", "orderings", "ordering_table", "pair_sentence",
           "option_sentence",
           "which_method_when", "describe", "PUBLISHED", "still_climbing", "paper_diff", "agreement_summary",
           "Rich", "to_html", "frontier_figure"]

PUBLISHED = compare.ROOT / "book" / "results" / "published.json"
#: the noise models of the comparison, in table order
NOISES = ["gaussian:15", "gaussian:25", "gaussian:50", "gaussian:5-50", "poisson:30", "speckle:0.1"]
LABELS = {"noisy": "noisy input", "bm3d": "BM3D", "nlm": "NLM", "tv": "TV", "n2c": "N2C", "n2n": "N2N",
          "n2v": "N2V", "n2s": "N2S", "noise2same": "Noise2Same", "laine19-mu": "Laine19 μ",
          "laine19-pme": "Laine19 posterior mean", "nb2nb": "Nb2Nb", "svid": "SVID", "self2align": "Self2Align",
          "dip": "DIP"}


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def to_html(md: str) -> str:
    """HTML of the Markdown this module writes: pipe tables, ``- `` lists, paragraphs, ``**bold**``
    and ```code```. (MyST-NB pastes HTML, not Markdown, across documents.)"""
    out, lines, i = [], md.splitlines(), 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            body = [r for r in rows[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append("<table class=\"table\"><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in rows[0])
                       + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r)
                                                          + "</tr>" for r in body) + "</tbody></table>")
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(lines[i].strip()[2:])
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + "</ul>")
            continue
        if line:
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


class Rich:
    """Markdown text that also renders as HTML: what the notebook glues for the theory page
    (Jupyter and MyST-NB show the HTML; ``str()`` is the Markdown)."""

    def __init__(self, markdown: str):
        self.markdown = markdown

    def _repr_markdown_(self) -> str:
        return self.markdown

    def _repr_html_(self) -> str:
        return to_html(self.markdown)

    def __str__(self) -> str:
        return self.markdown


def _remote(relative: str) -> Path | None:
    """A results file of the course repository, downloaded once into the cache (for Colab, where
    the library is installed without the book's files); None when it cannot be fetched."""
    import urllib.request

    from . import repository
    from ..data.registry import cache_dir

    url, branch = repository()
    raw = url.replace("https://github.com/", "https://raw.githubusercontent.com/") + f"/{branch}/{relative}"
    target = Path(cache_dir()) / "repository" / relative
    if target.is_file():
        return target
    try:
        with urllib.request.urlopen(raw, timeout=20) as r:
            body = r.read()
    except OSError:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    return target


def _remote_folder(preset: str) -> Path | None:
    got = [_remote(f"book/results/compare/{preset}/{c.name}.json") for c in compare.CONFIGURATIONS]
    got = [g for g in got if g is not None]
    return got[0].parent if got else None


def load(preset: str | None = None, folder: str | Path | None = None) -> tuple[str, dict]:
    """``(preset name, {configuration: results})`` of a preset's results folder.

    Default: ``cpu`` if its folder holds results, else ``tiny``. Where the repository's
    ``book/results`` folder is not there (the library installed from the package, as in Colab),
    the committed files are downloaded from the course repository.

    Raises:
        FileNotFoundError: no results found.
    """
    names = [preset] if preset else ["cpu", "tiny"]
    for name in names:
        f = Path(folder) if folder else compare.DEFAULT_OUT / name
        if folder is None and not compare.DEFAULT_OUT.parent.is_dir():
            f = _remote_folder(name) or f
        res = compare.load_results(f) if f.is_dir() else {}
        if res:
            return name, res
    raise FileNotFoundError(f"no comparison results for preset(s) {names} under {compare.DEFAULT_OUT}; "
                            "run python -m denoise_lib.compare --preset cpu")


def published(path: str | Path = PUBLISHED) -> dict:
    """The papers' numbers (``{"sources": {...}, "numbers": [...]}``)."""
    path = Path(path)
    if not path.is_file() and path == PUBLISHED:
        path = _remote("book/results/published.json") or path
    with open(path) as f:
        return json.load(f)


def paper_diff(pub: dict, source: str, a: str, b: str) -> float | None:
    """The paper's PSNR of method ``a`` minus that of ``b`` in one source column (None if absent)."""
    nums = {n["method"]: n["psnr"] for n in pub["numbers"] if n["source"] == source}
    return nums[a] - nums[b] if a in nums and b in nums else None


def noise_label(spec: str) -> str:
    """``"gaussian:25"`` → ``"Gaussian σ = 25"`` (σ and λ on their papers' scales)."""
    kind, _, arg = spec.partition(":")
    if kind == "gaussian":
        return f"Gaussian σ ∈ [{arg.replace('-', ', ')}] (blind)" if "-" in arg else f"Gaussian σ = {arg}"
    if kind == "poisson":
        return f"Poisson λ = {arg}"
    if kind == "speckle":
        return f"speckle v = {arg}"
    return spec


def _by_noise(results: dict, spec: str, channels: int) -> dict | None:
    for res in results.values():
        st = res["settings"]
        if st["noise"] == spec and st["configuration"]["channels"] == channels:
            return res
    return None


def _signed(v: float) -> str:
    """``v`` with its sign and two decimals; a value that rounds to zero is "+0.00", not "-0.00"."""
    return f"{round(float(v), 2) + 0.0:+.2f}"


def cell_text(cell: dict | None, key: str = "psnr", digits: int = 2) -> str:
    """``"27.41 ± 0.52"`` for a measured cell, the status for an absent one."""
    if cell is None:
        return "not run"
    if cell.get("status") != "done":
        return cell.get("status", "?")
    m = cell[key]
    se = "" if m.get("se") is None else f" ± {m['se']:.{digits}f}"
    return f"{m['mean']:.{digits}f}{se}"


def _reason(cell: dict | None) -> str:
    if cell is None:
        return "configuration not run"
    r = cell.get("reason", "")
    return r.split("; ")[0] if cell.get("status") == "not applicable" else r


def _subset(res: dict, cell: dict) -> str:
    """`` (first k of n images)`` when a cell was measured on fewer test images than its configuration."""
    n, k = len(res["settings"]["test_files"]), cell.get("test_images")
    return f" (first {k} of {n} images)" if k is not None and k < n else ""


def noise_table(results: dict, spec: str) -> str:
    """A Markdown table of one noise type: every compared method, grey and colour side by side.

    Columns: PSNR (dB, mean ± standard error over images × draws × seeds) and SSIM on the grey
    and the colour test set, training steps, counted GFLOPs of one training step, training
    seconds (grey) and the note (or, for an absent cell, the reason).
    """
    grey, colour = _by_noise(results, spec, 1), _by_noise(results, spec, 3)
    lines = ["| method | grey PSNR | grey SSIM | colour PSNR | colour SSIM | steps | GFLOP/step | train s | "
             "note |", "|---|---|---|---|---|---|---|---|---|"]
    for m in compare.COMPARED:
        g = grey["cells"].get(m) if grey else None
        c = colour["cells"].get(m) if colour else None
        any_ = g if g and g.get("status") == "done" else c
        steps = any_.get("steps") if any_ and any_.get("status") == "done" else None
        gfl = any_.get("step_gflops") if any_ else None
        ts = g.get("train_seconds") if g and g.get("status") == "done" else None
        note = any_.get("note", "") if any_ and any_.get("status") == "done" else _reason(g or c)
        if g and c and g.get("status") != "done" and c.get("status") == "done":
            note = f"grey: {_reason(g)}; colour: {c.get('note', '')}"
        lines.append(f"| {LABELS.get(m, m)} | {cell_text(g)} | {cell_text(g, 'ssim', 4)} | {cell_text(c)} | "
                     f"{cell_text(c, 'ssim', 4)} | {steps or ''} | {'' if gfl is None else f'{gfl:.1f}'} | "
                     f"{'' if ts is None else f'{ts:.0f}'} | {note} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- frontier, equal time


def frontier(cell: dict) -> dict:
    """The frontier of a trained cell, averaged over seeds: ``step``, ``seconds`` (measured),
    ``quiet_seconds`` (steps × the calibrated bare step) and ``val_psnr``."""
    runs = cell["runs"]
    steps = runs[0]["frontier"]["step"]
    val = np.mean([r["frontier"]["val_psnr"] for r in runs], axis=0)
    secs = np.mean([r["frontier"]["seconds"] for r in runs], axis=0)
    quiet = np.asarray(steps, dtype=float) * cell["bare_step_ms"] / 1000
    return {"step": list(steps), "seconds": secs.tolist(), "quiet_seconds": quiet.tolist(), "val_psnr": val.tolist()}


def _trained(res: dict) -> dict:
    return {m: c for m, c in res["cells"].items() if c.get("status") == "done" and c.get("kind") == "trained"}


def equal_time(res: dict, T: float | None = None) -> dict:
    """Each trained method's validation PSNR at the last logged point within time T.

    Time is the quiet time ``step × bare_step_ms`` (not distorted by the load during training).
    Default T: the whole budget of the cheapest trained method (the shortest total quiet
    time), so every method has trained at least that long.

    Returns:
        ``{"T": seconds, "cheapest": name, "rows": {name: {"step", "quiet_seconds", "val_psnr",
        "val_psnr_end", "steps_end"}}}``; a method with no logged point within T has
        ``step`` None.
    """
    cells = _trained(res)
    if not cells:
        return {"T": None, "cheapest": None, "rows": {}}
    fr = {m: frontier(c) for m, c in cells.items()}
    totals = {m: f["quiet_seconds"][-1] for m, f in fr.items()}
    cheapest = min(totals, key=totals.get)
    T = totals[cheapest] if T is None else T
    rows = {}
    for m, f in fr.items():
        idx = [i for i, t in enumerate(f["quiet_seconds"]) if t <= T * (1 + 1e-9)]
        i = idx[-1] if idx else None
        rows[m] = {"step": None if i is None else f["step"][i],
                   "quiet_seconds": None if i is None else f["quiet_seconds"][i],
                   "val_psnr": None if i is None else f["val_psnr"][i],
                   "val_psnr_end": f["val_psnr"][-1], "steps_end": f["step"][-1],
                   "first_point_seconds": f["quiet_seconds"][0]}
    return {"T": T, "cheapest": cheapest, "rows": rows}


def equal_time_table(results: dict, channels: int) -> str:
    """Markdown: validation PSNR at equal steps (the end of the budget) and at equal time T, per noise."""
    cfgs = [r for r in results.values() if r["settings"]["configuration"]["channels"] == channels]
    if not cfgs:
        return "(no configuration run)"
    eq = [equal_time(r) for r in cfgs]
    head = "| method | " + " | ".join(noise_label(r["settings"]["noise"]) for r in cfgs) + " |"
    lines = [head, "|---|" + "---|" * len(cfgs),
             "| T (s) | " + " | ".join("" if e["T"] is None else f"{e['T']:.1f} ({LABELS.get(e['cheapest'], e['cheapest'])})"
                                      for e in eq) + " |"]
    for m in compare.COMPARED:
        if not any(m in e["rows"] for e in eq):
            continue
        out = []
        for e in eq:
            r = e["rows"].get(m)
            if r is None:
                out.append("")
            elif r["step"] is None:
                out.append(f"no point by T (first at {r['first_point_seconds']:.1f} s) · end {r['val_psnr_end']:.2f}")
            else:
                out.append(f"{r['val_psnr']:.2f} @ {r['step']} st · end {r['val_psnr_end']:.2f}")
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def still_climbing(cell: dict, last: int = 3) -> float | None:
    """Slope of the validation PSNR over the last ``last`` frontier points, in dB per 100 steps."""
    f = frontier(cell)
    if len(f["step"]) < 2:
        return None
    s, v = np.asarray(f["step"][-last:], float), np.asarray(f["val_psnr"][-last:], float)
    if len(s) < 2 or s[-1] == s[0]:
        return None
    return float(np.polyfit(s, v, 1)[0] * 100)


def plot_frontier(res: dict, axes, *, methods: list[str] | None = None, reference: bool = True):
    """Validation PSNR against steps (``axes[0]``) and quiet seconds (``axes[1]``), one curve per
    trained method; classical methods (and the noisy input) as horizontal lines."""
    import matplotlib.pyplot as plt

    cells = _trained(res)
    names = [m for m in compare.COMPARED if m in cells and (methods is None or m in methods)]
    colours = plt.get_cmap("tab20").colors
    for m in names:
        k = compare.COMPARED.index(m)          # one colour per method in every panel
        f = frontier(cells[m])
        style = dict(color=colours[(2 * k) % 20 if k < 10 else (2 * k + 1) % 20], marker="o", ms=3, lw=1.4,
                     label=LABELS.get(m, m))
        axes[0].plot(f["step"], f["val_psnr"], **style)
        axes[1].plot(f["quiet_seconds"], f["val_psnr"], **style)
    if reference:
        for m in ("noisy", "bm3d"):
            c = res["cells"].get(m)
            if c and c.get("status") == "done" and c.get("val_psnr") is not None:
                for ax in axes:
                    ax.axhline(c["val_psnr"], color="grey", ls=":" if m == "noisy" else "-.", lw=1)
                    ax.annotate(LABELS[m], (1.0, c["val_psnr"]), xycoords=("axes fraction", "data"), fontsize=7,
                                ha="right", va="bottom", color="grey")
    e = equal_time(res)
    if e["T"] is not None:
        axes[1].axvline(e["T"], color="k", lw=0.8, ls="--")
    noisy = res["cells"].get("noisy", {}).get("val_psnr")
    if names and noisy is not None:   # curves far below the noisy input (an untrained head) would flatten the rest
        low = min(min(frontier(cells[m])["val_psnr"]) for m in names)
        for ax in axes:
            ax.set_ylim(bottom=max(low - 0.5, noisy - 10))
    axes[0].set_xlabel("training steps")
    axes[1].set_xlabel("quiet training time (s) = steps × calibrated step time")
    for ax in axes:
        ax.set_ylabel("validation PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[1].set_xscale("log")
    return names


def frontier_figure(results: dict, configs: list[str]):
    """The frontier of some configurations: one row each (PSNR against steps, against quiet time)
    and one legend for all rows. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(configs), 2, figsize=(12, 4.0 * len(configs) + 0.8), squeeze=False)
    for row, name in zip(axes, configs):
        plot_frontier(results[name], row)
        row[0].set_title(f"{name}: PSNR against steps")
        row[1].set_title(f"{name}: PSNR against quiet time")
    handles = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    order = [LABELS.get(m, m) for m in compare.COMPARED if LABELS.get(m, m) in handles]
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend([handles[k] for k in order], order, loc="lower center", ncol=min(6, max(1, len(order))),
               fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------------------- papers


def _cells_for(results: dict, config: str | None) -> dict | None:
    return results.get(config, {}).get("cells") if config else None


def gap_rows(results: dict, pub: dict | None = None) -> list[dict]:
    """One row per published number: the paper's PSNR, ours (same method, matching configuration), the gap."""
    pub = published() if pub is None else pub
    out = []
    for n in pub["numbers"]:
        src = pub["sources"][n["source"]]
        cells = _cells_for(results, src.get("matches"))
        cell = cells.get(n["method"]) if cells else None
        ours = cell["psnr"]["mean"] if cell and cell.get("status") == "done" else None
        subset = _subset(results[src["matches"]], cell) if ours is not None else ""
        out.append({"source": n["source"], "paper": src["paper"], "where": src["where"], "row": n["row"],
                    "method": n["method"], "paper_psnr": n["psnr"], "ours": ours, "subset": subset,
                    "ours_se": cell["psnr"]["se"] if ours is not None else None,
                    "gap": None if ours is None else ours - n["psnr"], "config": src.get("matches"),
                    "status": "done" if ours is not None else (_reason(cell) if cells is not None
                                                                 else "configuration not run")})
    return out


def gap_table(results: dict, pub: dict | None = None, source: str | None = None) -> str:
    """Markdown: the papers' numbers beside ours, with the gap (ours − paper)."""
    rows = [r for r in gap_rows(results, pub) if source is None or r["source"] == source]
    lines = ["| paper (table) | row | our method | paper PSNR | ours | gap | our configuration |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ours = "—" if r["ours"] is None else (f"{r['ours']:.2f}" + ("" if r["ours_se"] is None else f" ± {r['ours_se']:.2f}")
                                              + r["subset"])
        gap = r["status"] if r["gap"] is None else _signed(r["gap"])
        lines.append(f"| {r['paper']} ({r['where']}) | {r['row']} | {LABELS.get(r['method'], r['method'])} | "
                     f"{r['paper_psnr']:.2f} | {ours} | {gap} | {r['config'] or '—'} |")
    return "\n".join(lines)


def orderings(results: dict, pub: dict | None = None) -> list[dict]:
    """For each paper column: its own method against every other method of the column that we
    measured in the matching configuration: the paper's difference, ours, and whether the
    ordering agrees. A disagreement also reports how fast both are still climbing at the end of
    our budget (validation dB per 100 steps), the first thing to check before blaming settings."""
    pub = published() if pub is None else pub
    out = []
    for sid, src in pub["sources"].items():
        cells = _cells_for(results, src.get("matches"))
        if not cells:
            continue
        nums = {n["method"]: n["psnr"] for n in pub["numbers"] if n["source"] == sid}
        own = src.get("own_method")
        if own not in nums:
            continue
        for other, p in nums.items():
            if other in (own, "noisy"):
                continue
            a, b = cells.get(own), cells.get(other)
            if not (a and b and a.get("status") == "done" and b.get("status") == "done"):
                continue
            dp, do = nums[own] - p, a["psnr"]["mean"] - b["psnr"]["mean"]
            row = {"source": sid, "paper": src["paper"], "where": src["where"], "config": src["matches"],
                   "a": own, "b": other, "paper_diff": dp, "ours_diff": do, "agree": (dp > 0) == (do > 0),
                   "slope_a": still_climbing(a) if a.get("kind") == "trained" else None,
                   "slope_b": still_climbing(b) if b.get("kind") == "trained" else None}
            out.append(row)
    return out


def ordering_table(results: dict, pub: dict | None = None) -> str:
    """Markdown: every ordering of :func:`orderings`, agrees / disagrees, with the end-of-budget slopes."""
    lines = ["| paper (table) | our configuration | pair | paper Δ | ours Δ | ordering | still climbing "
             "(dB/100 steps) |", "|---|---|---|---|---|---|---|"]
    for r in orderings(results, pub):
        sl = ", ".join(f"{LABELS.get(m, m)} {_signed(s)}" for m, s in ((r["a"], r["slope_a"]), (r["b"], r["slope_b"]))
                       if s is not None)
        lines.append(f"| {r['paper']} ({r['where']}) | {r['config']} | {LABELS.get(r['a'], r['a'])} − "
                     f"{LABELS.get(r['b'], r['b'])} | {_signed(r['paper_diff'])} | {_signed(r['ours_diff'])} | "
                     f"{'agrees' if r['agree'] else '**disagrees**'} | {sl} |")
    return "\n".join(lines)


def pair_sentence(results: dict, config: str, a: str, b: str, paper_diff: float | None = None,
                  paper: str | None = None) -> str:
    """One sentence, from the data: "On <config>, A is x dB above/below B (paper: …); …"."""
    cells = results.get(config, {}).get("cells", {})
    ca, cb = cells.get(a), cells.get(b)
    la, lb = LABELS.get(a, a), LABELS.get(b, b)
    if not (ca and cb and ca.get("status") == "done" and cb.get("status") == "done"):
        return f"{la} and {lb} were not both measured on {config}."
    d = ca["psnr"]["mean"] - cb["psnr"]["mean"]
    se = [c["psnr"]["se"] for c in (ca, cb)]
    s = f"On {config}, {la} is {abs(d):.2f} dB {'above' if d > 0 else 'below'} {lb}"
    if all(x is not None for x in se):
        s += f" (standard errors {se[0]:.2f} and {se[1]:.2f} dB)"
    s += f" after {ca.get('steps')} steps"
    if paper_diff is not None:
        agree = (paper_diff > 0) == (d > 0)
        s += (f"; {paper or 'the paper'} reports {abs(paper_diff):.2f} dB {'above' if paper_diff > 0 else 'below'}, "
              f"so the ordering {'agrees' if agree else 'disagrees'}")
    sa = still_climbing(ca) if ca.get("kind") == "trained" else None
    sb = still_climbing(cb) if cb.get("kind") == "trained" else None
    if sa is not None and sb is not None:
        s += (f". Over the last logged points of the budget the validation PSNR of {la} changed by {_signed(sa)} "
              f"and that of {lb} by {_signed(sb)} dB per 100 steps, "
              + ("so the gap was still narrowing" if (d < 0) == (sa > sb) else "so the gap was not narrowing"))
    return s + "."


def option_sentence(results: dict, other: dict, config: str, method: str, other_label: str, default_label: str,
                    reference: str | None = None) -> str:
    """One sentence comparing a method's cell in ``results`` (its default settings) with the same
    method in ``other`` (the same preset run with ``--option``), and with ``reference``'s cell."""
    la = LABELS.get(method, method)
    ca = results.get(config, {}).get("cells", {}).get(method)
    cb = other.get(config, {}).get("cells", {}).get(method) if other else None
    if not (ca and cb and ca.get("status") == "done" and cb.get("status") == "done"):
        return f"{la} with {other_label} was not measured on {config}."
    if other[config]["settings"]["budget"] != results[config]["settings"]["budget"]:
        return f"{la} with {other_label} was measured with another budget than the default; not compared."
    opts = other[config]["settings"].get("method_options", {}).get(method, {})
    d = cb["psnr"]["mean"] - ca["psnr"]["mean"]
    s = (f"On {config} after {cb.get('steps')} steps, {la} with {other_label} ("
         + ", ".join(f"{k}={v}" for k, v in opts.items()) + f") reaches {cb['psnr']['mean']:.2f} dB, "
         f"{abs(d):.2f} dB {'above' if d > 0 else 'below'} {default_label} ({ca['psnr']['mean']:.2f} dB)")
    cr = results[config]["cells"].get(reference) if reference else None
    if cr and cr.get("status") == "done":
        lr = LABELS.get(reference, reference)
        s += (f"; {lr} reaches {cr['psnr']['mean']:.2f} dB, so with {other_label} {la} is "
              f"{abs(cb['psnr']['mean'] - cr['psnr']['mean']):.2f} dB "
              f"{'above' if cb['psnr']['mean'] > cr['psnr']['mean'] else 'below'} {lr} and with {default_label} "
              f"{abs(ca['psnr']['mean'] - cr['psnr']['mean']):.2f} dB "
              f"{'above' if ca['psnr']['mean'] > cr['psnr']['mean'] else 'below'}")
    return s + "."


def budget_sentence(short: dict, long: dict, config: str, a: str, b: str) -> str:
    """One sentence on how the gap ``a − b`` changes with the budget: the same configuration in two
    runs of different step counts (``short``, ``long``: results of :func:`load`), compared on the
    test images both runs share, with the same noisy draw and training seed (the first of each).

    Nothing is compared when the runs' test files, draw seeds or methods' cells do not allow it;
    the sentence then says why."""
    la, lb = LABELS.get(a, a), LABELS.get(b, b)
    rs, rl = short.get(config), long.get(config)
    cells = [r.get("cells", {}).get(m) if r else None for r in (rs, rl) for m in (a, b)]
    if not all(c and c.get("status") == "done" and "per_image" in c for c in cells):
        return f"{la} and {lb} were not both measured, image by image, on {config} in both runs."
    ss, sl = rs["settings"], rl["settings"]
    n = min(len(ss["test_files"]), len(sl["test_files"]))
    if ss["test_files"][:n] != sl["test_files"][:n] or ss["test_noise_seeds"][0] != sl["test_noise_seeds"][0]:
        return f"The two runs of {config} share no test image with the same noisy draw; not compared."
    seeds = {c["runs"][0]["seed"] for c in cells}
    if len(seeds) != 1:
        return f"The two runs of {config} trained {la} and {lb} with different seeds; not compared."
    gaps, steps = [], []
    for ca, cb in (cells[:2], cells[2:]):
        pa, pb = (np.asarray(c["per_image"]["psnr"], float)[0, 0, :n] for c in (ca, cb))
        gaps.append(float(np.mean(pa - pb)))
        steps.append(ca["steps"])
    change = abs(gaps[1]) - abs(gaps[0])
    crossed = (gaps[0] > 0) != (gaps[1] > 0)
    s = (f"On the first {n} test images of {config} (the same noisy draw, training seed {seeds.pop()}), "
         f"{la} − {lb} is {_signed(gaps[0])} dB after {steps[0]} steps and {_signed(gaps[1])} dB after "
         f"{steps[1]} steps: with {steps[1] / steps[0]:.3g}× the budget the ordering "
         + ("reversed" if crossed else f"held and the gap {'narrowed' if change < 0 else 'widened'} by "
                                      f"{abs(change):.2f} dB"))
    return s + "."


def below_noisy(results: dict) -> str:
    """One sentence: the trained cells whose test PSNR ends below the noisy input's own, by
    grey and colour configurations; the plainest sign that a budget is too small for them."""
    out = []
    for channels, what in ((1, "grey"), (3, "colour")):
        configs = [c for c, r in results.items() if r["settings"]["configuration"]["channels"] == channels
                   and r["cells"].get("noisy", {}).get("status") == "done"]
        n_cells, low = 0, {}
        for c in configs:
            y = results[c]["cells"]["noisy"]["psnr"]["mean"]
            for m, cell in _trained(results[c]).items():
                n_cells += 1
                if cell["psnr"]["mean"] < y:
                    low.setdefault(LABELS.get(m, m), []).append(c)
        if not n_cells:
            continue
        text = f"{sum(map(len, low.values()))} of the {n_cells} trained {what} cells end below the noisy input"
        if low:
            text += " (" + "; ".join(f"{m} in {len(cs)} of {len(configs)} configurations"
                                     for m, cs in sorted(low.items(), key=lambda kv: -len(kv[1]))) + ")"
        out.append(text)
    return ("; ".join(out) + ".") if out else "No trained cell with a measured noisy input."


def dip_sentence(results: dict) -> str:
    """One sentence per measured DIP cell: its image, iterations, final PSNR against the noisy
    input, and the best PSNR of its recorded curve."""
    out = []
    for c, r in results.items():
        cell, noisy = r["cells"].get("dip", {}), r["cells"].get("noisy", {})
        if cell.get("status") != "done" or not cell.get("dip_curves"):
            continue
        for cur in cell["dip_curves"]:
            p, its = cur["psnr"], cur["iteration"]
            k = int(np.argmax(p))
            s = (f"On {c}, DIP fitted to {cur['image']} for {cell['steps']} iterations ends at "
                 f"{cell['psnr']['mean']:.2f} dB")
            if noisy.get("status") == "done":
                y = noisy["psnr"]["mean"]
                s += (f", {abs(cell['psnr']['mean'] - y):.2f} dB {'above' if cell['psnr']['mean'] > y else 'below'} "
                      f"the noisy input")
            s += (f"; over the fit (recorded every {its[1] - its[0] if len(its) > 1 else 1} iterations) its PSNR "
                  f"never exceeded {p[k]:.2f} dB (iteration {its[k]})")
            out.append(s + ".")
    return " ".join(out) if out else "DIP was not run in these results."


# ---------------------------------------------------------------------------- which method when


def _best(cells: dict, candidates: list[str]) -> tuple[str | None, dict | None]:
    done = [(m, cells[m]) for m in candidates if cells.get(m, {}).get("status") == "done"]
    if not done:
        return None, None
    return max(done, key=lambda mc: mc[1]["psnr"]["mean"])


def which_method_when(results: dict) -> str:
    """Markdown: the data one has → the best measured method among those that can use it, with the
    measured reason (its PSNR, the runner-up's, the configuration)."""
    def first(*names):
        for n in names:
            if n in results:
                return n
        return None

    situations = [
        ("one noisy image, nothing else", ["bm3d", "nlm", "tv", "dip"], ("bsd68-gaussian25", "cbsd68-gaussian25")),
        ("many noisy images, σ unknown (Gaussian)", ["n2v", "n2s", "noise2same", "nb2nb", "svid", "bm3d"],
         ("bsd68-gaussian5-50", "cbsd68-gaussian5-50")),
        ("many noisy images, σ known (Gaussian)", ["n2v", "n2s", "noise2same", "nb2nb", "svid", "laine19-mu",
                                                   "laine19-pme", "bm3d"], ("bsd68-gaussian25", "cbsd68-gaussian25")),
        ("pairs of noisy images of the same scene", ["n2n"], ("bsd68-gaussian25",)),
        ("misaligned noisy frames of a moving scene", ["self2align"], ("bsd68-gaussian25",)),
        ("clean/noisy pairs", ["n2c"], ("bsd68-gaussian25",)),
        ("colour images, σ known", ["n2v", "n2s", "noise2same", "nb2nb", "svid", "laine19-pme", "bm3d"],
         ("cbsd68-gaussian25",)),
        ("Poisson (photon) noise", ["n2v", "n2s", "noise2same", "nb2nb", "svid", "bm3d"],
         ("bsd68-poisson30", "cbsd68-poisson30")),
        ("speckle (multiplicative) noise", ["n2v", "n2s", "noise2same", "nb2nb", "svid", "bm3d"],
         ("bsd68-speckle0.1", "cbsd68-speckle0.1")),
    ]
    lines = ["| the data you have | method (measured best) | measured reason |", "|---|---|---|"]
    for what, cand, cfgs in situations:
        cfg = first(*cfgs)
        if cfg is None:
            lines.append(f"| {what} | — | configuration {cfgs[0]} not run |")
            continue
        cells = results[cfg]["cells"]
        best, cell = _best(cells, cand)
        if best is None:
            lines.append(f"| {what} | — | none of {', '.join(cand)} measured on {cfg} |")
            continue
        others = sorted(((m, cells[m]) for m in cand if m != best and cells.get(m, {}).get("status") == "done"),
                        key=lambda mc: -mc[1]["psnr"]["mean"])
        why = f"{cell['psnr']['mean']:.2f} dB{_subset(results[cfg], cell)} on {cfg}"
        if others:
            m2, c2 = others[0]
            why += f"; next {LABELS.get(m2, m2)} {c2['psnr']['mean']:.2f} dB{_subset(results[cfg], c2)}"
        ref = cells.get("n2c")
        if best != "n2c" and ref and ref.get("status") == "done":
            why += f"; N2C (clean targets) {ref['psnr']['mean']:.2f} dB"
        lines.append(f"| {what} | {LABELS.get(best, best)} | {why} |")
    return "\n".join(lines)


def describe(preset: str, results: dict) -> str:
    """One paragraph: the preset, its budget, the test subset, the machine and the load, from the files."""
    any_ = next(iter(results.values()))
    st, prov = any_["settings"], any_["provenance"]
    p = st["preset"]
    loads = [c["provenance"]["load_average_before"][0] for r in results.values() for c in r["cells"].values()
             if c.get("provenance", {}).get("load_average_before")]
    walls = sum(c.get("provenance", {}).get("wall_seconds", 0) for r in results.values()
                for m, c in r["cells"].items() if c.get("group", m) == m)
    lib = prov["library"]
    return (f"Preset {preset} ({p['note']}): {p['steps']} training steps of batch {p['batch_size']} × "
            f"{p['patch_size']}² per learned method, learning rate {p['lr']:g} with cosine decay; the first "
            f"{len(st['test_files'])} test image(s) × {p['draws']} noise draw(s) × {len(p['seeds'])} seed(s); "
            f"frontier every {p['eval_every']} steps on {p['val_images']} validation crops of {p['val_crop']}². "
            f"{len(results)} configuration(s), {walls / 60:.1f} min of cell time on {prov['machine']['cpu']} "
            f"({prov['machine']['threads']} thread(s), torch {prov['machine']['torch']}), 1-minute load average "
            + (f"{min(loads):.2f}–{max(loads):.2f}" if loads else "not recorded")
            + f" before the cells; library commit {str(lib.get('commit'))[:10]}"
            + (" with local changes" if lib.get("library_modified") else "") + f", source {st['library_source']}.")


def agreement_summary(results: dict, pub: dict | None = None) -> str:
    """Markdown list, one line per paper column: how many of its orderings ours agree with, and
    which disagree."""
    rows = orderings(results, pub)
    if not rows:
        return "No paper column has a matching configuration in these results."
    out = []
    for sid in dict.fromkeys(r["source"] for r in rows):
        rs = [r for r in rows if r["source"] == sid]
        bad = [r for r in rs if not r["agree"]]
        line = (f"- {rs[0]['paper']} ({rs[0]['where']}, our {rs[0]['config']}): {len(rs) - len(bad)} of {len(rs)} "
                f"orderings agree")
        if bad:
            line += "; disagree: " + ", ".join(
                f"{LABELS.get(r['a'], r['a'])} vs {LABELS.get(r['b'], r['b'])} (paper {_signed(r['paper_diff'])}, "
                f"ours {_signed(r['ours_diff'])} dB)" for r in bad)
        out.append(line)
    return "\n".join(out)
