"""Sphinx extension: refuse to publish notebooks whose committed outputs are not valid.

The book renders the outputs committed with each notebook (execution is off).
Before the build reads any page, this extension runs
:func:`denoise_lib.course.check_notebook` on every notebook of the table of
contents and logs a warning per problem (missing or out-of-order outputs, error
outputs, a non-quick budget, stale provenance, a jupytext pair out of sync). The
build runs with ``-W``, so any warning fails it.
"""
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _check(app):
    from denoise_lib import course

    root = Path(app.srcdir)
    for nb in sorted((root / "notebooks").glob("*.ipynb")):
        for problem in course.check_notebook(nb):
            logger.warning(f"{nb.relative_to(root)}: {problem}", location=str(nb.relative_to(root)))


def setup(app):
    app.connect("builder-inited", _check)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
