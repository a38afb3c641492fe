"""Course tooling: notebook settings, provenance, notebook checks, and the book build command.

In a notebook::

    from denoise_lib import course
    cfg = course.setup()          # device, budget, seed; prints them
    ...
    course.provenance()           # last cell: hashes of the library code that produced the outputs

From the shell (repository root)::

    python -m denoise_lib.course build              # build the book from the committed outputs
    python -m denoise_lib.course build --execute    # re-run every notebook here first, then build
    python -m denoise_lib.course execute notebooks/01_noise2clean_vs_noise2noise.ipynb
    python -m denoise_lib.course check              # the checks the tests and the book build run

A committed notebook is **valid** when (:func:`check_notebook`): every code cell
has been executed, in order, with no error output; it was run with the ``quick``
budget; its provenance cell matches the current source of every library module it
used; its jupytext pair (``.py``) holds the same cells; and its Colab install cell
points at the repository and branch set in ``_config.yml`` (the one place where
they are set).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Settings", "setup", "provenance", "check_notebook", "execute_notebook", "repository",
           "colab_cell_source", "ROOT"]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
PROVENANCE_MARK = "denoise_lib provenance"
BUDGET_MARK = "budget:"
EXCLUDED_FROM_PROVENANCE = {"denoise_lib.course", "denoise_lib.course.__main__"}  # tooling, not results


@dataclass(frozen=True)
class Settings:
    """What :func:`setup` chose: ``device`` (torch.device), ``budget`` (:class:`~denoise_lib.train.Budget`), ``seed``."""

    device: torch.device
    budget: object
    seed: int

    @property
    def name(self) -> str:
        """The budget's name: "smoke", "quick", "full" or "seconds"."""
        return self.budget.name

    def pick(self, smoke, quick, full):
        """Choose a value by budget (seconds budgets count as quick)."""
        return {"smoke": smoke, "full": full}.get(self.budget.name, quick)


def setup(seed: int = 0, *, budget=None, quiet: bool = False) -> Settings:
    """Settings for a notebook: automatic device and budget.

    The budget is ``budget`` if given, else ``$DENOISE_BUDGET``, else ``full`` on
    CUDA and ``quick`` on CPU (:meth:`denoise_lib.train.Budget.resolve`).
    Prints one line (the notebook checks read the budget from it). torch's global RNG
    is left alone: the library draws from explicit generators, and a notebook seeds
    torch itself for its own cells (``torch.manual_seed(cfg.seed)``).
    """
    from ..train import Budget, default_device

    device = default_device()
    b = Budget.resolve(budget, device)
    if not quiet:
        limit = f"{b.steps} steps" if b.steps else f"{b.seconds:g} s"
        print(f"device: {device.type} | {BUDGET_MARK} {b.name} ({limit} per training run, "
              f"batch {b.batch_size} × {b.patch_size}², lr {b.lr:g}) | torch {torch.__version__} | "
              f"set DENOISE_BUDGET=smoke|quick|full|SECONDS to change")
    return Settings(device, b, seed)


def _module_hashes() -> dict[str, str]:
    out = {}
    for name, mod in sorted(sys.modules.items()):
        if (name == "denoise_lib" or name.startswith("denoise_lib.")) and name not in EXCLUDED_FROM_PROVENANCE:
            f = getattr(mod, "__file__", None)
            if f and Path(f).is_file():
                out[name] = hashlib.sha256(Path(f).read_bytes()).hexdigest()[:12]
    return out


def provenance() -> None:
    """Print the hash of the source of every ``denoise_lib`` module loaded in this kernel.

    Put it in the last cell of a notebook. :func:`check_notebook` recomputes the
    hashes from the current files: any change to a module the notebook used makes
    the committed outputs stale, and the tests and the book build fail until the
    notebook is re-executed.
    """
    print(f"{PROVENANCE_MARK}: " + json.dumps(_module_hashes(), sort_keys=True))


def repository() -> tuple[str, str]:
    """``(url, branch)`` of the course repository, read from ``_config.yml`` (the one place they are set)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = cfg.get("repository", {})
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def colab_cell_source() -> str:
    """The first cell of every notebook: installs the library in Colab only, keeping Colab's torch/numpy."""
    url, branch = repository()
    return (
        "# Colab only: install the course library. Colab's own torch and numpy are kept as they are.\n"
        "import sys\n"
        "if \"google.colab\" in sys.modules:\n"
        "    import subprocess\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", "
        f"\"denoise-lib @ git+{url}@{branch}\"], check=True)"
    )


def _cells_equal(a, b) -> bool:
    strip = lambda cells: [(c.cell_type, c.source.strip()) for c in cells]  # noqa: E731
    return strip(a) == strip(b)


def check_notebook(path: str | Path, *, require_budget: str | None = "quick") -> list[str]:
    """Problems that make a committed notebook unfit to publish (empty list: valid).

    Checks: every code cell executed, execution counts 1, 2, 3, … in cell order, no
    error outputs, run with ``require_budget``, provenance of every library module it
    used equal to the current source, jupytext pair in sync, and Colab cell current.
    """
    import jupytext
    import nbformat

    path = Path(path)
    problems = []
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code]
    if any(n is None for n in counts):
        problems.append(f"{sum(n is None for n in counts)} code cell(s) never executed")
    elif counts != list(range(1, len(code) + 1)):
        problems.append(f"execution counts are not 1..{len(code)} in order: {counts}")
    for i, c in enumerate(code):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                problems.append(f"code cell {i + 1} has an error output: {o.get('ename')}: {o.get('evalue')}")
    text = _stream_text(code)
    if require_budget:
        m = re.search(rf"{re.escape(BUDGET_MARK)} (\w+)", text)
        if not m:
            problems.append("no course.setup() output recording the budget")
        elif m.group(1) != require_budget:
            problems.append(f"outputs come from the {m.group(1)!r} budget, not {require_budget!r}")
    last = _stream_text(code[-1:])
    m = re.search(rf"{re.escape(PROVENANCE_MARK)}: (\{{.*\}})", last)
    if not m:
        problems.append("no course.provenance() output in the last cell")
    else:
        recorded = json.loads(m.group(1))
        for name, h in recorded.items():
            f = _module_file(name)
            if f is None:
                problems.append(f"stale: module {name} no longer exists")
            elif hashlib.sha256(f.read_bytes()).hexdigest()[:12] != h:
                problems.append(f"stale: {name} changed since the notebook ran ({f.relative_to(ROOT)})")
    pair = path.with_suffix(".py")
    if not pair.is_file():
        problems.append(f"jupytext pair {pair.name} missing")
    elif not _cells_equal(jupytext.read(pair).cells, nb.cells):
        problems.append(f"jupytext pair {pair.name} is out of sync (run: jupytext --sync {path.name})")
    if not code or code[0].source.strip() != colab_cell_source():
        problems.append("first cell is not the current Colab install cell (python -m denoise_lib.course sync)")
    return problems


def _stream_text(cells) -> str:
    """All stream (stdout/stderr) text of some code cells, joined."""
    out = []
    for c in cells:
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                t = o.get("text", "")
                out.append(t if isinstance(t, str) else "".join(t))
    return "\n".join(out)


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split("."))
    for f in (ROOT / rel.with_suffix(".py"), ROOT / rel / "__init__.py"):
        if f.is_file():
            return f
    return None


def notebooks() -> list[Path]:
    """The course notebooks, in file-name order."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def sync_colab_cells(paths=None) -> None:
    """Rewrite the Colab install cell of each notebook (and its pair) from ``_config.yml``."""
    import jupytext

    for p in paths or notebooks():
        nb = jupytext.read(p)
        first = next(c for c in nb.cells if c.cell_type == "code")
        if first.source.strip() != colab_cell_source():
            first.source = colab_cell_source()
            jupytext.write(nb, p)
            jupytext.write(nb, p.with_suffix(".py"), fmt="py:percent")


def execute_notebook(path: str | Path, budget: str = "quick", timeout: int = 900) -> None:
    """Execute a notebook in place (working directory ``notebooks/``) and refresh its pair.

    The ``.py`` pair is the edited source: if it is newer, its cells replace the
    notebook's before running. Raises ``nbclient`` errors on a failing cell.
    """
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    pair = path.with_suffix(".py")
    if pair.is_file() and (not path.is_file() or pair.stat().st_mtime > path.stat().st_mtime):
        nb = jupytext.read(pair)
        nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                              "language": "python"})
    else:
        nb = nbformat.read(path, as_version=4)
    # the published outputs carry no progress bars (students running the notebook see them)
    env = {"DENOISE_BUDGET": budget, "DENOISE_PROGRESS": "0"}
    env_before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    nbformat.write(nb, path)
    jupytext.write(nb, pair, fmt="py:percent")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m denoise_lib.course")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the book (HTML) from the committed notebook outputs")
    b.add_argument("--execute", action="store_true",
                   help="first re-run every notebook on this machine (budget: $DENOISE_BUDGET or quick)")
    e = sub.add_parser("execute", help="re-run notebooks in place")
    e.add_argument("paths", nargs="*")
    sub.add_parser("check", help="check every committed notebook")
    sub.add_parser("sync", help="rewrite the Colab cells from _config.yml")
    a = p.parse_args(argv)
    budget = os.environ.get("DENOISE_BUDGET", "quick")
    executed = a.cmd in ("execute", "build") and (a.cmd == "execute" or a.execute)
    if executed:
        for nb in [Path(x) for x in getattr(a, "paths", None) or []] or notebooks():
            print(f"executing {nb} (budget {budget}) ...", flush=True)
            execute_notebook(nb, budget)
    if a.cmd == "sync":
        sync_colab_cells()
    if a.cmd in ("check", "build"):
        want = budget if executed else "quick"
        bad = {nb.name: check_notebook(nb, require_budget=want) for nb in notebooks()}
        bad = {k: v for k, v in bad.items() if v}
        for k, v in bad.items():
            print(f"{k}:\n  " + "\n  ".join(v), file=sys.stderr)
        if bad:
            return 1
        print(f"{len(notebooks())} notebooks checked: outputs complete, in order, current")
    if a.cmd == "build":
        cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "-W", "-n", "--keep-going"]
        print(" ".join(cmd), flush=True)
        return subprocess.call(cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
