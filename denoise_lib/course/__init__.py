"""Course tooling: notebook settings, provenance, notebook checks, and the book build command.

In a notebook::

    from denoise_lib import course
    cfg = course.setup(notebook="03_blind_spot")   # device, budget, seed and the training plan
    budget = cfg.budget_for("full")                # this run's budget (course.plans.PLANS)
    hist = cfg.train(method, train_set, "full")    # fit(), checkpointed in the run cache
    ...
    course.provenance()           # last cell: hashes of the library code that produced the outputs

Every training a notebook makes through :meth:`Settings.train` is checkpointed in the
**run cache** (:func:`run_cache`), keyed by notebook, run label and configuration:
running the notebook again after a disconnect continues each training where it stopped,
and a finished training is loaded instead of repeated.

From the shell (repository root)::

    python -m denoise_lib.course build              # build the book from the committed outputs
    python -m denoise_lib.course build --execute    # re-run every notebook here first, then build
    python -m denoise_lib.course execute notebooks/01_noise2clean_vs_noise2noise.ipynb
    python -m denoise_lib.course check              # the checks the tests and the book build run
    python -m denoise_lib.course estimate           # trainings and GPU minutes per notebook and budget
    python -m denoise_lib.course gpu-check          # device tests + every notebook (smoke) on CUDA

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

__all__ = ["Settings", "setup", "Experiment", "experiment", "glue", "provenance", "check_notebook", "execute_notebook", "repository",
           "colab_cell_source", "run_cache", "ROOT", "RUN_CACHE_ENV"]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
PROVENANCE_MARK = "denoise_lib provenance"
BUDGET_MARK = "budget:"
EXCLUDED_FROM_PROVENANCE = {"denoise_lib.course", "denoise_lib.course.__main__"}  # tooling, not results
RUN_CACHE_ENV = "DENOISE_RUN_CACHE"


def run_cache() -> Path | None:
    """The folder of the notebooks' training checkpoints, or None when switched off.

    ``$DENOISE_RUN_CACHE`` if set (``0`` or ``off``: no checkpoints), else ``runs`` in the
    download cache (``$DENOISE_LIB_CACHE``, e.g. a mounted Google Drive folder in Colab, or
    the user cache folder).
    """
    env = os.environ.get(RUN_CACHE_ENV)
    if env is not None and env.strip().lower() in ("0", "off", "none", ""):
        return None
    if env:
        return Path(env).expanduser()
    from ..data.registry import cache_dir

    return cache_dir() / "runs"


@dataclass(frozen=True)
class Settings:
    """What :func:`setup` chose: ``device`` (torch.device), ``budget`` (:class:`~denoise_lib.train.Budget`),
    ``seed`` and ``notebook`` (the key of its training plan in :data:`denoise_lib.course.plans.PLANS`)."""

    device: torch.device
    budget: object
    seed: int
    notebook: str | None = None

    @property
    def name(self) -> str:
        """The budget's name: "smoke", "quick", "full", "paper" or "seconds"."""
        return self.budget.name

    def pick(self, smoke, quick, full):
        """Choose a value by budget (seconds budgets count as quick, paper as full)."""
        return {"smoke": smoke, "full": full, "paper": full}.get(self.budget.name, quick)

    def run(self, label: str):
        """The :class:`~denoise_lib.course.plans.Run` ``label`` of this notebook under this budget.

        Raises:
            KeyError: no plan for the notebook, or no run of that label.
        """
        from .plans import runs_for

        if self.notebook is None:
            raise KeyError("setup() was called without notebook=…; there is no training plan")
        runs = runs_for(self.notebook, self.budget)
        for r in runs:
            if r.label == label:
                return r
        raise KeyError(f"{self.notebook} has no run {label!r} in its plan; runs: {', '.join(r.label for r in runs)}")

    def budget_for(self, label: str):
        """The :class:`~denoise_lib.train.Budget` of run ``label``: its steps and shape, or, for a
        seconds budget, its shape with the time limit instead of the step limit."""
        b = self.run(label).budget(self.budget.name)
        if self.budget.name == "seconds":
            b = b.replace(steps=None, seconds=self.budget.seconds)
        return b

    def train(self, method, data, label: str, *, seed: int | None = None, budget=None, **fit_kwargs):
        """:func:`~denoise_lib.train.fit` run ``label`` of the plan, checkpointed in the run cache.

        The checkpoint's name holds the notebook, the label and a hash of the run's whole
        configuration (method, settings, network, budget, seed, precision, data), so that
        re-running the notebook resumes an interrupted training and loads a finished one,
        while any change of settings starts afresh. With ``until=`` (training in chunks),
        each chunk has its own file, started from the previous chunk's.

        Args:
            method, data: as :func:`~denoise_lib.train.fit`.
            label: the run's label in the plan; its network must be the one the plan lists.
            seed: default ``self.seed``.
            budget: default :meth:`budget_for` ``(label)``.
            **fit_kwargs: passed to :func:`~denoise_lib.train.fit` (not ``checkpoint``).

        Raises:
            ValueError: the method's network differs from the plan's (the cost estimate
                would be wrong), or ``checkpoint`` was passed.
        """
        import shutil

        from .. import methods
        from ..train import _architecture, fit, load_checkpoint, resolve_precision, run_config

        if "checkpoint" in fit_kwargs:
            raise ValueError("Settings.train chooses the checkpoint (the run cache); call fit() for your own")
        run = self.run(label)
        planned = methods.build(run.method, channels=run.channels, patch_size=run.patch_size, net=run.net,
                                noise="gaussian:25")  # a nominal noise: only the network is compared
        if type(planned) is not type(method) or _architecture(planned.net) != _architecture(method.net):
            raise ValueError(f"run {label!r} of {self.notebook}: the plan lists {run.method} with network "
                             f"{run.net or 'default'}, the notebook trains another {type(method).__name__}; "
                             "update denoise_lib/course/plans.py so that the cost estimate stays true")
        seed = self.seed if seed is None else seed
        budget = budget if budget is not None else self.budget_for(label)
        folder = run_cache()
        if folder is None:
            return fit(method, data, budget, seed=seed, device=self.device, **fit_kwargs)
        precision = resolve_precision(fit_kwargs.get("precision"), self.device)
        config = run_config(method, data.for_method(method.requires), budget, seed, precision=precision)
        key = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
        slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower() or "run"
        base = folder / self.notebook / f"{slug}-{key}"
        until = fit_kwargs.get("until")
        path = base.with_suffix(".pt") if until is None else base.parent / f"{base.name}-until{until}.pt"
        if until is not None and not path.exists():  # start from the latest earlier chunk
            chunks = [(int(m.group(1)), f) for f in base.parent.glob(f"{base.name}-until*.pt")
                      if (m := re.search(r"-until(\d+)\.pt$", f.name)) and int(m.group(1)) < until]
            if chunks:
                shutil.copyfile(max(chunks)[1], path)
        if path.exists():
            done = load_checkpoint(path)["schedule"]["step"]
            limit = until if until is not None else budget.steps
            what = "loading the finished run" if limit is not None and done >= limit else f"resuming at step {done}"
            print(f"{label}: {what} from the run cache ({Path(path).name})")
        return fit(method, data, budget, seed=seed, device=self.device, checkpoint=path, **fit_kwargs)


def setup(seed: int = 0, *, budget=None, quiet: bool = False, notebook: str | None = None) -> Settings:
    """Settings for a notebook: automatic device and budget, and the notebook's training plan.

    The budget is ``budget`` if given, else ``$DENOISE_BUDGET``, else ``full`` on
    CUDA and ``quick`` on CPU (:meth:`denoise_lib.train.Budget.resolve`).
    Prints one line (the notebook checks read the budget from it). torch's global RNG
    is left alone: the library draws from explicit generators, and a notebook seeds
    torch itself for its own cells (``torch.manual_seed(cfg.seed)``).

    Args:
        notebook: the notebook's file stem, the key of its training plan
            (:data:`denoise_lib.course.plans.PLANS`); :meth:`Settings.run`,
            :meth:`Settings.budget_for` and :meth:`Settings.train` read it.

    Raises:
        KeyError: ``notebook`` has no plan.
    """
    import warnings

    from tqdm import TqdmWarning

    from ..train import Budget, default_device
    from .plans import PLANS

    # tqdm.auto (imported by pooch) warns with a site-packages path where ipywidgets is missing
    warnings.filterwarnings("ignore", category=TqdmWarning)
    device = default_device()
    b = Budget.resolve(budget, device)
    if notebook is not None and notebook not in PLANS:
        raise KeyError(f"no training plan for notebook {notebook!r}; known: {', '.join(PLANS)}")
    if not quiet:
        if notebook is not None:
            what = "trainings as planned" if b.steps else f"{b.seconds:g} s per training run"
        else:
            limit = f"{b.steps} steps" if b.steps else f"{b.seconds:g} s"
            what = f"{limit} per training run, batch {b.batch_size} × {b.patch_size}², lr {b.lr:g}"
        print(f"device: {device.type} | {BUDGET_MARK} {b.name} ({what}) | torch {torch.__version__} | "
              "set DENOISE_BUDGET=smoke|quick|full|paper|SECONDS to change")
    return Settings(device, b, seed, notebook)


def glue(name: str, value, *, display: bool = False):
    """Record ``value`` under ``name`` for the book (MyST-NB's ``glue``) and return it.

    Theory pages paste the recorded value with ``{glue:text}`` (numbers, with a format
    such as ``:.2f``) or ``{glue:figure}`` (matplotlib figures), so a number on a page is
    the one the executed notebook computed. Where MyST-NB is not installed (Colab) the
    value is returned and, with ``display=True``, shown; nothing else happens.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:  # pragma: no cover - Colab
        if display:
            from IPython.display import display as _show

            _show(value)
        return value
    import numbers

    if isinstance(value, numbers.Number) and not isinstance(value, bool):  # numpy/torch scalars
        value = int(value) if isinstance(value, numbers.Integral) else float(value)
    elif hasattr(value, "item") and getattr(value, "shape", None) == ():  # 0-d arrays/tensors
        value = value.item()
    _glue(name, value, display=display)
    return value


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
    """The first cell of every notebook: installs the library in Colab only, keeping Colab's torch/numpy.

    It also offers to keep the download and run caches on Google Drive
    (``DENOISE_LIB_CACHE``), so that a new Colab session resumes the notebook's trainings.
    """
    url, branch = repository()
    return (
        "# Colab only: install the course library. Colab's own torch and numpy are kept as they are.\n"
        "# KEEP_ON_DRIVE = True keeps downloaded images and training checkpoints in your Google Drive\n"
        "# (DENOISE_LIB_CACHE): after a disconnect, running the notebook again resumes its trainings.\n"
        "import os\n"
        "import sys\n"
        "KEEP_ON_DRIVE = False\n"
        "if \"google.colab\" in sys.modules:\n"
        "    import subprocess\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", "
        f"\"denoise-lib @ git+{url}@{branch}\"], check=True)\n"
        "    if KEEP_ON_DRIVE:\n"
        "        from google.colab import drive\n"
        "        drive.mount(\"/content/drive\")\n"
        "        os.environ[\"DENOISE_LIB_CACHE\"] = \"/content/drive/MyDrive/denoise_lib\""
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


def _with_outputs(nb, old):
    """``nb`` with the outputs of ``old``'s cells of equal source (a pair edited as text keeps the rest)."""
    outputs = {c.source: c for c in old.cells if c.cell_type == "code"}
    for c in nb.cells:
        if c.cell_type == "code" and c.source in outputs:
            c.outputs = outputs[c.source].get("outputs", [])
            c.execution_count = outputs[c.source].get("execution_count")
    return nb


def sync_colab_cells(paths=None) -> None:
    """Rewrite the Colab install cell of each notebook (and its pair) from ``_config.yml``."""
    import jupytext

    for p in paths or notebooks():
        pair = p.with_suffix(".py")
        newer = pair.is_file() and pair.stat().st_mtime > p.stat().st_mtime
        nb = jupytext.read(pair if newer else p)  # the .py pair is the edited source when newer
        if newer:
            nb.metadata = {**jupytext.read(p).metadata, **nb.metadata}
            nb = _with_outputs(nb, jupytext.read(p))
        first = next(c for c in nb.cells if c.cell_type == "code")
        if first.source.strip() != colab_cell_source():
            first.source = colab_cell_source()
            jupytext.write(nb, p)
            jupytext.write(nb, p.with_suffix(".py"), fmt="py:percent")


def execute_notebook(path: str | Path, budget: str = "quick", timeout: int = 1800) -> None:
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
    # the published outputs carry no progress bars (students running the notebook see them),
    # and every training runs from scratch (a fresh, empty run cache)
    import tempfile

    env = {"DENOISE_BUDGET": budget, "DENOISE_PROGRESS": "0", "DENOISE_STATIC_OUTPUTS": "1",
           RUN_CACHE_ENV: tempfile.mkdtemp(prefix="runs-")}
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


BUDGETS = ("smoke", "quick", "full", "paper")


def _estimate(a) -> int:
    from . import plans

    unknown = [n for n in a.notebooks or [] if n not in plans.PLANS]
    bad = [b for b in a.budgets if b not in BUDGETS]
    if unknown or bad:
        print(f"unknown notebook(s) {unknown} or budget(s) {bad}; notebooks: {', '.join(plans.PLANS)}",
              file=sys.stderr)
        return 2
    rows = plans.estimate(a.notebooks, a.budgets)
    print(plans.estimate_table(rows, per_run=a.runs))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


def _time_steps(device) -> list[str]:
    """One training step per method at the ``full`` shape on ``device``: measured ms and the
    FLOP rate it implies (the calibration of :data:`denoise_lib.course.plans.DEVICES`)."""
    from .. import methods
    from ..noise import Gaussian
    from ..train import Budget, bare_step_ms, resolve_precision, step_flops

    g = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 1, 160, 160, generator=g) for _ in range(4)]
    full = Budget.resolve("full", device)
    lines = [f"one full-shape step ({full.batch_size} × {full.patch_size}²) per method on {device}, "
             f"precision {resolve_precision(None, device)}:"]
    for name in ("n2c", "n2n", "n2v", "n2s", "noise2same", "laine19-pme", "nb2nb", "svid", "self2align"):
        m = methods.build(name, channels=1, noise=Gaussian(25 / 255), patch_size=full.patch_size).to(device)
        ts = type(m).training_set(images, Gaussian(25 / 255), seed=0)
        flops = step_flops(m, ts, full.replace(batch_size=1)) * full.batch_size
        ms = bare_step_ms(m, ts, full, device=device, steps=5)
        lines.append(f"  {name:<12} {ms:8.1f} ms/step  {flops / 1e9:8.1f} GFLOP  {flops / ms / 1e9:6.2f} TFLOP/s")
    return lines


def gpu_check(device: str = "cuda", *, notebooks=None, tests: bool = True, steps: bool = False) -> int:
    """Run the device tests and every notebook under ``smoke`` on ``device``; print times and errors.

    Returns 0 when everything passed. On a machine without CUDA, ``device="cuda"``
    stops at once with a message (``device="cpu"`` runs the same checks on the CPU).
    """
    import tempfile
    import time

    if device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing was run",
              file=sys.stderr)
        return 2
    # static widget outputs: a headless kernel has no front end for the live ipywidgets
    env = {**os.environ, "DENOISE_DEVICE": device, "DENOISE_BUDGET": "smoke", "DENOISE_PROGRESS": "0",
           "DENOISE_STATIC_OUTPUTS": "1", RUN_CACHE_ENV: tempfile.mkdtemp(prefix="gpu-check-")}
    if device.startswith("cuda"):
        print(f"gpu-check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    failures = 0
    if tests:
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-x", str(ROOT / "tests" / "test_contract.py"),
                              str(ROOT / "tests" / "test_train.py")], env=env, cwd=ROOT)
        print(f"device tests: {'passed' if rc == 0 else 'FAILED'} in {time.perf_counter() - t0:.0f} s")
        failures += rc != 0
    import jupytext
    from nbclient import NotebookClient

    wanted = set(notebooks or [])
    for path in [p for p in _all_notebooks() if not wanted or p.stem in wanted]:
        nb = jupytext.read(path.with_suffix(".py"))
        nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
        t0 = time.perf_counter()
        before = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            NotebookClient(nb, timeout=1800, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            status = "ok"
        except Exception as e:  # report and go on with the next notebook
            status = f"ERROR {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
            failures += 1
        finally:
            for k, v in before.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        print(f"{path.stem:<34} {time.perf_counter() - t0:7.1f} s  {status}", flush=True)
    if steps:
        print("\n".join(_time_steps(torch.device(device))))
    print("gpu-check: all passed" if not failures else f"gpu-check: {failures} failure(s)")
    return int(failures > 0)


def _all_notebooks() -> list[Path]:
    return notebooks()


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
    est = sub.add_parser("estimate", help="trainings, counted FLOPs and estimated GPU minutes per notebook")
    est.add_argument("--notebooks", nargs="*", default=None, help="file stems (default: all)")
    est.add_argument("--budgets", nargs="*", default=list(BUDGETS), help="default: smoke quick full paper")
    est.add_argument("--runs", action="store_true", help="one line per training run")
    est.add_argument("--json", default=None, help="also write the rows here")
    gpu = sub.add_parser("gpu-check", help="run the device tests and every notebook (smoke) on CUDA")
    gpu.add_argument("--device", default="cuda", help="cuda (default); cpu runs the same checks on the CPU")
    gpu.add_argument("--notebooks", nargs="*", default=None, help="file stems (default: all)")
    gpu.add_argument("--no-tests", action="store_true", help="skip the device tests")
    gpu.add_argument("--steps", action="store_true", help="also time one full-shape training step per method")
    from . import sitecheck as _sitecheck  # course tooling only; never imported by the notebooks
    _sitecheck.add_arguments(sub.add_parser(
        "sitecheck", help="open every page of the built book in headless Chromium and report its defects"))
    a = p.parse_args(argv)
    if a.cmd == "sitecheck":
        return _sitecheck.run(a)
    if a.cmd == "estimate":
        return _estimate(a)
    if a.cmd == "gpu-check":
        return gpu_check(a.device, notebooks=a.notebooks, tests=not a.no_tests, steps=a.steps)
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


from .experiment import Experiment, experiment  # noqa: E402  (the notebooks' shared data set-up)
