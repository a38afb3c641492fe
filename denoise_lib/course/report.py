"""What a notebook hands to the book: small result tables and figure files for the theory pages.

* :func:`table` — a long ``print`` of aligned columns is cut off on a narrow page; a
  Markdown table wraps and scrolls. pandas is not a dependency of the course, so this
  is the whole of it::

      from denoise_lib.course.report import table
      table(["λ_inv", "PSNR (dB)"], [["2σ", 26.1], ["2·std", 25.2]], digits=[None, 2])

  The returned object displays itself (the last expression of a cell); ``str()`` gives
  the plain-text form.
* :func:`show_figure` — shows a figure as an HTML ``<figure>`` with alt text and a
  caption, and can glue it, so that a theory page pastes the same figure with
  ``{glue:any}`` and its ``:doc:`` option. (MyST-NB's ``{glue:figure}`` cannot paste
  from another document, and a cross-document image would lose its alt text.) The
  numbers of the pages come with ``{glue:text}`` (:func:`denoise_lib.course.glue`).
"""
from __future__ import annotations

import math
from numbers import Real

__all__ = ["Table", "table", "cell", "figure_html", "show_figure", "image_grid"]


def cell(value, digits: int | None = None) -> str:
    """One cell as text: floats with ``digits`` decimals (default: 4 significant digits),
    ``None`` as an em dash, booleans as "yes"/"no", anything else with ``str``."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Real) and not isinstance(value, int):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}f}" if digits is not None else f"{v:.4g}"
    return str(value)


class Table:
    """A table of text cells (see :func:`table`); shown as Markdown by IPython/MyST-NB.

    Attributes:
        header: column titles. rows: lists of cell strings. align: one of "l", "r", "c" per column.
        caption: optional line shown above the table.
    """

    def __init__(self, header, rows, align=None, caption: str | None = None):
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in r] for r in rows]
        if any(len(r) != len(self.header) for r in self.rows):
            raise ValueError(f"every row needs {len(self.header)} cells")
        self.align = list(align) if align is not None else ["l"] + ["r"] * (len(self.header) - 1)
        if len(self.align) != len(self.header) or any(a not in "lrc" for a in self.align):
            raise ValueError("align needs one of 'l', 'r', 'c' per column")
        self.caption = caption

    def _repr_markdown_(self) -> str:
        esc = lambda s: s.replace("|", "\\|")  # noqa: E731
        rule = {"l": ":---", "r": "---:", "c": ":---:"}
        lines = [] if not self.caption else [self.caption, ""]
        lines.append("| " + " | ".join(esc(h) for h in self.header) + " |")
        lines.append("|" + "|".join(rule[a] for a in self.align) + "|")
        lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in self.rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        cols = list(zip(self.header, *self.rows))
        widths = [max(len(c) for c in col) for col in cols]
        fmt = lambda cells: "  ".join(c.ljust(w) if a == "l" else c.rjust(w)  # noqa: E731
                                      for c, w, a in zip(cells, widths, self.align))
        lines = [] if not self.caption else [self.caption]
        lines += [fmt(self.header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in self.rows]
        return "\n".join(lines)

    __repr__ = __str__


def table(header, rows, *, digits=None, align=None, caption: str | None = None) -> Table:
    """A :class:`Table` from raw values.

    Args:
        header: column titles.
        rows: one sequence of values per row (numbers, strings, None, booleans).
        digits: decimals for float columns: one int for all, or one int/None per column.
        align: "l"/"r"/"c" per column (default: first left, the rest right).
        caption: a line above the table.

    Raises:
        ValueError: rows of the wrong length, or a bad ``align``.
    """
    n = len(header)
    per_col = list(digits) if isinstance(digits, (list, tuple)) else [digits] * n
    if len(per_col) != n:
        raise ValueError(f"digits needs one entry per column ({n})")
    return Table(header, [[cell(v, d) for v, d in zip(r, per_col)] if len(r) == n else list(r) for r in rows],
                 align=align, caption=caption)



def figure_html(fig, *, alt: str, caption: str = "", dpi: int = 160, css_dpi: int = 100) -> str:
    """``fig`` as an HTML ``<figure>``: an embedded PNG with alt text and a plain-text caption.

    The image is drawn at ``dpi`` and shown at ``css_dpi`` pixels per inch (a 7-inch
    figure fills the book's ~700 px column and stays sharp on dense screens).

    Raises:
        ValueError: empty ``alt``.
    """
    import base64
    import html
    import io

    if not alt or not alt.strip():
        raise ValueError("a figure needs alt text")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    width = int(round(fig.get_figwidth() * css_dpi))
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure class="course-figure" style="margin: 0.5em 0">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}" '
            f'width="{width}" style="max-width: 100%; height: auto">{cap}</figure>')


def show_figure(fig, *, alt: str, caption: str = "", glue: str | None = None) -> None:
    """Display ``fig`` as an HTML figure (:func:`figure_html`) and close it; optionally glue it.

    With ``glue="name"`` the figure is also recorded for MyST-NB, and a theory page
    pastes it, alt text and caption included, with::

        ```{glue:any} name
        :doc: ../notebooks/NN_notebook.ipynb
        ```

    (``{glue:figure}`` only pastes from its own page.) Returns nothing, so that a figure
    ending a cell is not displayed twice.

    Raises:
        ValueError: empty ``alt``.
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    obj = HTML(figure_html(fig, alt=alt, caption=caption))
    plt.close(fig)
    if glue:
        from . import glue as _glue

        _glue(glue, obj, display=True)
    else:
        display(obj)


def image_grid(panels: dict, *, reference=None, crop=None, cols: int = 3, width: float = 7.0,
               fontsize: int = 10, cmap: dict | None = None):
    """Images in a grid of ``cols`` columns that fits the book's column (``width`` inches).

    Args:
        panels: ``{title: image}``; each (1, C, H, W) (or any :func:`~denoise_lib.image.as_image`
            layout). Images are clipped to [0, 1] for display unless ``cmap`` names them.
        reference: a clean image; panels of the same shape (other than the reference
            itself) get "PSNR … dB" in their title (computed on the whole image).
        crop: ``(rows, cols)`` slices applied for display only.
        cols: columns of the grid.
        cmap: ``{title: (colormap, vmin, vmax)}`` for panels that are maps, not images
            ((1, 1, H, W) or (H, W); shown unclipped with a colour bar).

    Returns:
        the matplotlib figure (not shown).
    """
    import matplotlib.pyplot as plt

    from .. import metrics
    from ..image import as_image, to_numpy

    cmap = cmap or {}
    n = len(panels)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    first = as_image(next(iter(panels.values())), allow_range=True)
    h, w = first.shape[-2:]
    if crop is not None:
        h, w = len(range(h)[crop[0]]), len(range(w)[crop[1]])
    cell_w = width / cols
    fig, axes = plt.subplots(rows, cols, figsize=(width, rows * (cell_w * h / w + 0.55)), squeeze=False)
    ref = None if reference is None else as_image(reference)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, img) in zip(axes.flat, panels.items()):
        if name in cmap:
            import torch

            t = torch.as_tensor(img).detach().float().cpu()
            a = to_numpy(t[:1, :1]) if t.dim() == 4 else t.numpy()
            if crop is not None:
                a = a[crop[0], crop[1]]
            cm, lo, hi = cmap[name]
            im = ax.imshow(a, cmap=cm, vmin=lo, vmax=hi, interpolation="nearest")
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            bar.ax.tick_params(labelsize=max(6, fontsize - 2))
            ax.set_title(name, fontsize=fontsize)
            ax.axis("off")
            continue
        t = as_image(img, allow_range=True)
        label = name
        if ref is not None and t is not reference and t.shape == ref.shape and not t.equal(ref):
            label = f"{name}\n{metrics.psnr(t, ref):.2f} dB"
        shown = t.clamp(0, 1)
        if crop is not None:
            shown = shown[..., crop[0], crop[1]]
        a = to_numpy(shown[:1])
        ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=fontsize)
        ax.axis("off")
    fig.tight_layout()
    return fig
