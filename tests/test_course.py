"""course.check_notebook on synthetic notebooks, and the repository settings from _config.yml."""
from __future__ import annotations

import contextlib
import io
import json
import re

import jupytext
import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

import denoise_lib.noise  # noqa: F401  (a module the synthetic notebooks "used")
from denoise_lib import course

SETUP_LINE = ("device: cpu | budget: quick (1000 steps per training run, batch 4 × 64², lr 0.001) | "
              "torch 2 | set DENOISE_BUDGET=smoke|quick|full|SECONDS to change\n")


def provenance_text() -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        course.provenance()
    return buf.getvalue()


def stream(text: str):
    return new_output("stream", name="stdout", text=text)


def valid_cells():
    return [
        new_markdown_cell("# A synthetic chapter"),
        new_code_cell(course.colab_cell_source(), execution_count=1),
        new_code_cell("from denoise_lib import course\ncfg = course.setup()", execution_count=2,
                      outputs=[stream(SETUP_LINE)]),
        new_markdown_cell("Some text."),
        new_code_cell("import denoise_lib.noise\nprint(denoise_lib.noise.parse_noise('gaussian:25'))",
                      execution_count=3, outputs=[stream("Gaussian(sigma_range=(0.098, 0.098))\n")]),
        new_code_cell("course.provenance()", execution_count=4, outputs=[stream(provenance_text())]),
    ]


def write(tmp_path, cells, *, name="nb.ipynb", pair=True, pair_cells=None):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / name
    nbformat.write(nb, path)
    if pair:
        jupytext.write(new_notebook(cells=pair_cells) if pair_cells is not None else nb,
                       path.with_suffix(".py"), fmt="py:percent")
    return path


def code_cells(cells):
    return [c for c in cells if c.cell_type == "code"]


def one_problem(problems, pattern):
    assert len(problems) == 1, problems
    assert re.search(pattern, problems[0]), problems[0]


def test_provenance_lists_loaded_modules_with_current_hashes():
    text = provenance_text()
    assert text.startswith(course.PROVENANCE_MARK + ": ")
    recorded = json.loads(text.split(": ", 1)[1])
    assert "denoise_lib.noise" in recorded and "denoise_lib.course" not in recorded
    import hashlib
    assert recorded["denoise_lib.noise"] == hashlib.sha256(
        (course.ROOT / "denoise_lib" / "noise.py").read_bytes()).hexdigest()[:12]


def test_valid_notebook_has_no_problems(tmp_path):
    assert course.check_notebook(write(tmp_path, valid_cells())) == []


def test_cell_without_execution_count(tmp_path):
    cells = valid_cells()
    code_cells(cells)[2].execution_count = None
    one_problem(course.check_notebook(write(tmp_path, cells)), "1 code cell.* never executed")


def test_execution_counts_out_of_order(tmp_path):
    cells = valid_cells()
    code = code_cells(cells)
    code[1].execution_count, code[2].execution_count = 3, 2
    one_problem(course.check_notebook(write(tmp_path, cells)), r"not 1\.\.4 in order: \[1, 3, 2, 4\]")


def test_execution_counts_must_start_at_one(tmp_path):
    cells = valid_cells()
    for i, c in enumerate(code_cells(cells)):
        c.execution_count = i + 5
    one_problem(course.check_notebook(write(tmp_path, cells)), "not 1..4 in order")


def test_error_output(tmp_path):
    cells = valid_cells()
    code_cells(cells)[2].outputs.append(
        new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[]))
    one_problem(course.check_notebook(write(tmp_path, cells)),
                "code cell 3 has an error output: ZeroDivisionError: division by zero")


def test_smoke_budget_outputs(tmp_path):
    cells = valid_cells()
    code_cells(cells)[1].outputs = [stream(SETUP_LINE.replace("budget: quick", "budget: smoke"))]
    one_problem(course.check_notebook(write(tmp_path, cells)), "'smoke' budget, not 'quick'")


def test_missing_setup_output(tmp_path):
    cells = valid_cells()
    code_cells(cells)[1].outputs = []
    one_problem(course.check_notebook(write(tmp_path, cells)), "no course.setup")


def _with_provenance(recorded: dict):
    cells = valid_cells()
    code_cells(cells)[-1].outputs = [stream(f"{course.PROVENANCE_MARK}: {json.dumps(recorded)}\n")]
    return cells


def _recorded():
    return json.loads(provenance_text().split(": ", 1)[1])


def test_stale_provenance_hash(tmp_path):
    rec = _recorded()
    rec["denoise_lib.noise"] = "0" * 12
    one_problem(course.check_notebook(write(tmp_path, _with_provenance(rec))),
                r"stale: denoise_lib\.noise changed since the notebook ran \(denoise_lib/noise\.py\)")


def test_provenance_of_a_module_that_no_longer_exists(tmp_path):
    rec = _recorded()
    rec["denoise_lib.methods.removed_method"] = "abcdef012345"
    one_problem(course.check_notebook(write(tmp_path, _with_provenance(rec))),
                "stale: module denoise_lib.methods.removed_method no longer exists")


def test_missing_provenance(tmp_path):
    cells = valid_cells()
    code_cells(cells)[-1].outputs = []
    one_problem(course.check_notebook(write(tmp_path, cells)), r"no course\.provenance\(\) output")


def test_provenance_must_be_in_the_last_cell(tmp_path):
    """Modules imported after an early provenance() call would escape the staleness check."""
    cells = valid_cells()
    cells[-1].source = "print('done')"
    cells[-1].outputs = [stream("done\n")]
    code_cells(cells)[1].outputs.append(stream(provenance_text()))  # provenance printed early
    problems = course.check_notebook(write(tmp_path, cells))
    assert any("provenance" in p and "last cell" in p for p in problems), problems


def test_missing_jupytext_pair(tmp_path):
    one_problem(course.check_notebook(write(tmp_path, valid_cells(), pair=False)), "jupytext pair nb.py missing")


def test_jupytext_pair_out_of_sync(tmp_path):
    pair_cells = valid_cells()
    code_cells(pair_cells)[2].source += "\nprint('edited in the .py file')"
    path = write(tmp_path, valid_cells(), pair_cells=pair_cells)
    one_problem(course.check_notebook(path), "jupytext pair nb.py is out of sync")


def test_jupytext_pair_with_a_missing_cell(tmp_path):
    path = write(tmp_path, valid_cells(), pair_cells=valid_cells()[:-1])
    one_problem(course.check_notebook(path), "out of sync")


def test_wrong_first_cell(tmp_path):
    cells = valid_cells()
    code_cells(cells)[0].source = course.colab_cell_source().replace("@main", "@old-branch")
    one_problem(course.check_notebook(write(tmp_path, cells)), "first cell is not the current Colab install cell")


def test_several_problems_are_all_reported(tmp_path):
    cells = valid_cells()
    code_cells(cells)[1].outputs = [stream(SETUP_LINE.replace("quick", "full"))]
    code_cells(cells)[2].outputs.append(new_output("error", ename="E", evalue="x", traceback=[]))
    problems = course.check_notebook(write(tmp_path, cells, pair=False))
    assert len(problems) == 3, problems


def test_require_budget_can_be_changed_or_disabled(tmp_path):
    cells = valid_cells()
    code_cells(cells)[1].outputs = [stream(SETUP_LINE.replace("budget: quick", "budget: smoke"))]
    path = write(tmp_path, cells)
    assert course.check_notebook(path, require_budget="smoke") == []
    assert course.check_notebook(path, require_budget=None) == []


def test_repository_comes_from_config_yml():
    cfg = yaml.safe_load((course.ROOT / "_config.yml").read_text())
    url, branch = course.repository()
    assert url == cfg["repository"]["url"].rstrip("/")
    assert branch == cfg["repository"]["branch"]
    assert url.startswith("https://github.com/")
    src = course.colab_cell_source()
    assert f"git+{url}@{branch}" in src
    assert 'if "google.colab" in sys.modules' in src


def test_setup_prints_the_budget_line(monkeypatch, capsys):
    monkeypatch.setenv("DENOISE_BUDGET", "smoke")
    s = course.setup(seed=3)
    out = capsys.readouterr().out
    assert "budget: smoke (3 steps" in out
    assert s.name == "smoke" and s.seed == 3
    assert s.pick("a", "b", "c") == "a"
    assert course.setup(budget="60", quiet=True).pick("a", "b", "c") == "b"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("budget", ["quick", "smoke"])
def test_setup_output_passes_the_budget_check(tmp_path, monkeypatch, capsys, budget):
    """The line course.setup() prints is what check_notebook reads."""
    course.setup(budget=budget)
    line = capsys.readouterr().out
    cells = valid_cells()
    code_cells(cells)[1].outputs = [stream(line)]
    problems = course.check_notebook(write(tmp_path, cells))
    if budget == "quick":
        assert problems == []
    else:
        one_problem(problems, "'smoke' budget")
