"""Every committed course notebook is complete, in order, run with the quick budget and current.

nbval (see pyproject.toml) re-runs the notebooks; this file checks the committed
outputs themselves with :func:`denoise_lib.course.check_notebook`.
"""
from __future__ import annotations

import pytest

from denoise_lib import course

NOTEBOOKS = course.notebooks()


def test_there_is_at_least_one_notebook():
    assert NOTEBOOKS, f"no notebooks (*.ipynb) found in {course.NOTEBOOKS}"


def test_every_jupytext_script_has_its_notebook():
    scripts = [p for p in sorted(course.NOTEBOOKS.glob("*.py")) if p.name != "conftest.py"]
    orphans = [p.name for p in scripts if not p.with_suffix(".ipynb").is_file()]
    assert orphans == [], f"jupytext scripts without their executed .ipynb: {orphans}"


# With no notebook at all, the single `None` case fails instead of being skipped.
@pytest.mark.parametrize("path", NOTEBOOKS or [None], ids=[p.name for p in NOTEBOOKS] or ["no-notebooks"])
def test_notebook_is_valid(path):
    assert path is not None, f"no notebooks (*.ipynb) found in {course.NOTEBOOKS}"
    problems = course.check_notebook(path)
    assert problems == [], f"{path.name}:\n  " + "\n  ".join(problems)
