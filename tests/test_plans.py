"""The notebooks' training plans, budgets, the run cache (resume), precision and the cost estimate."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell

from denoise_lib import course, data, methods
from denoise_lib.course import plans
from denoise_lib.noise import Gaussian
from denoise_lib.train import Budget, CheckpointError, fit, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
LABEL_CALLS = re.compile(r"""cfg\.(?:run|budget_for)\(\s*["']([^"']+)["']|cfg\.train\([^()]*?,\s*["']([^"']+)["']""")


def test_every_notebook_has_a_plan_with_every_budget():
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(plans.PLANS)
    for nb, table in plans.PLANS.items():
        assert {"smoke", "quick", "full"} <= set(table), nb
        assert set(table) <= set(plans.BUDGET_NAMES), nb
        assert ("paper" in table) == (nb in plans.PAPER_NOTES), nb
        assert (nb in plans.PAPER_NOTES) != (nb in plans.NO_PAPER), f"{nb}: say why there is no paper budget"
        labels = [[r.label for r in runs] for runs in table.values()]
        assert all(ls == labels[0] for ls in labels), f"{nb}: the same runs in every budget"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_only_planned_labels(path):
    src = path.read_text()
    assert f'course.setup(seed=0, notebook="{path.stem}")' in src
    used = {a or b for a, b in LABEL_CALLS.findall(src)}
    # names of a loop variable (e.g. cfg.train(method, pairs, name)) are checked by running the notebook
    planned = {r.label for r in plans.PLANS[path.stem]["quick"]}
    assert used <= planned, used - planned
    assert "fit(" not in src.replace("cfg.train(", ""), "trainings go through cfg.train (checkpointed)"


@pytest.mark.parametrize("budget", ["smoke", "quick", "full", "paper", "45"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_budget_gives_every_run_a_valid_budget(budget, device):
    b = Budget.resolve(budget, device)
    for nb, table in plans.PLANS.items():
        cfg = course.Settings(torch.device(device), b, 0, nb)
        for r in plans.runs_for(nb, b):
            rb = cfg.budget_for(r.label)
            assert isinstance(rb, Budget)
            if budget == "45":
                assert rb.steps is None and rb.seconds == 45.0
                want = "full" if device == "cuda" else "quick"
                assert (rb.batch_size, rb.patch_size) == (r.batch_size, r.patch_size)
                assert r in table[want]
            else:
                assert rb.steps == r.steps and rb.steps >= 1
                if budget == "paper" and "paper" not in table:
                    assert r in table["full"]


def test_unknown_notebook_or_label_is_refused():
    with pytest.raises(KeyError, match="no training plan"):
        course.setup(notebook="99_nothing", quiet=True)
    cfg = course.setup(notebook="01_noise2clean_vs_noise2noise", budget="smoke", quiet=True)
    with pytest.raises(KeyError, match="no run 'n2v'"):
        cfg.run("n2v")


def _tiny_sets(kind="clean"):
    imgs = [torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    return data.TrainingSet.from_clean(imgs, Gaussian(25 / 255), kind=kind, seed=0)


def test_train_checks_the_network_against_the_plan(monkeypatch, tmp_path):
    monkeypatch.setenv(course.RUN_CACHE_ENV, str(tmp_path))
    cfg = course.setup(notebook="01_noise2clean_vs_noise2noise", budget="smoke", quiet=True)
    wrong = methods.build("n2c", channels=1, net={"features": 8})
    with pytest.raises(ValueError, match="plans.py"):
        cfg.train(wrong, _tiny_sets(), "n2c")
    with pytest.raises(ValueError, match="checkpoint"):
        cfg.train(methods.build("n2c"), _tiny_sets(), "n2c", checkpoint=tmp_path / "x.pt")


def _interrupt_at(method, call):
    """Make ``method.loss`` raise KeyboardInterrupt on its ``call``-th call (1-based)."""
    orig, n = method.loss, [0]

    def loss(batch):
        n[0] += 1
        if n[0] == call:
            raise KeyboardInterrupt
        return orig(batch)

    method.loss = loss


def test_interrupted_training_resumes_from_the_run_cache_and_a_finished_one_loads(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(course.RUN_CACHE_ENV, str(tmp_path))
    cfg = course.setup(notebook="01_noise2clean_vs_noise2noise", budget="smoke", quiet=True)
    ts = _tiny_sets()
    ref = methods.build("n2c")
    monkeypatch.setenv(course.RUN_CACHE_ENV, "0")
    fit(ref, ts, cfg.budget_for("n2c"), seed=0, device="cpu")          # uninterrupted, no cache
    monkeypatch.setenv(course.RUN_CACHE_ENV, str(tmp_path))

    m = methods.build("n2c")
    _interrupt_at(m, 3)
    with pytest.raises(KeyboardInterrupt):
        cfg.train(m, ts, "n2c")
    files = list((tmp_path / "01_noise2clean_vs_noise2noise").glob("n2c-*.pt"))
    assert len(files) == 1
    m2 = methods.build("n2c")
    h = cfg.train(m2, ts, "n2c")
    assert "resuming at step 2" in capsys.readouterr().out
    assert h.steps == 3
    for a, b in zip(ref.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    m3 = methods.build("n2c")
    _interrupt_at(m3, 1)                               # would fail if it trained again
    h3 = cfg.train(m3, ts, "n2c")
    assert "loading the finished run" in capsys.readouterr().out
    assert h3.steps == 3 and h3.step_ms > 0
    for a, b in zip(ref.state_dict().values(), m3.state_dict().values()):
        assert torch.equal(a, b)
    m4 = methods.build("n2c")                          # another seed: another file, trained afresh
    cfg.train(m4, ts, "n2c", seed=1)
    assert len(list((tmp_path / "01_noise2clean_vs_noise2noise").glob("n2c-*.pt"))) == 2


def test_chunked_training_keeps_one_file_per_chunk(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(course.RUN_CACHE_ENV, str(tmp_path))
    cfg = course.setup(notebook="07_svid", budget="smoke", quiet=True)
    ts = _tiny_sets("single")
    net = cfg.run("svid").net

    def make():
        return methods.build("svid", net=net)

    a = make()
    cfg.train(a, ts, "svid", until=2)
    after2 = {k: v.clone() for k, v in a.state_dict().items()}
    cfg.train(a, ts, "svid", until=4)
    b = make()                                         # a rerun: chunk 2 loads the step-2 weights
    h = cfg.train(b, ts, "svid", until=2)
    assert h.steps == 2 and "loading the finished run" in capsys.readouterr().out
    for k, v in b.state_dict().items():
        assert torch.equal(v, after2[k]), k


def _run_notebook(nb, env_cache, monkeypatch):
    monkeypatch.setenv("DENOISE_BUDGET", "smoke")
    monkeypatch.setenv("DENOISE_PROGRESS", "0")
    monkeypatch.setenv(course.RUN_CACHE_ENV, str(env_cache))
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")


def test_interrupted_notebook_resumes_when_run_again(monkeypatch, tmp_path):
    """Notebook 01 under smoke: a Ctrl-C inside its first training, then the whole notebook again."""
    path = ROOT / "notebooks" / "01_noise2clean_vs_noise2noise.py"
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    setup_at = next(i for i, c in enumerate(nb.cells) if "course.setup(" in c.source)
    interrupted = jupytext.read(path)
    interrupted.metadata = nb.metadata
    interrupted.cells.insert(setup_at + 1, new_code_cell(
        "from denoise_lib.methods.n2c import Noise2Clean\n"
        "_loss, _n = Noise2Clean.loss, [0]\n"
        "def _ctrl_c(self, batch):\n"
        "    _n[0] += 1\n"
        "    if _n[0] == 3:\n"
        "        raise KeyboardInterrupt\n"
        "    return _loss(self, batch)\n"
        "Noise2Clean.loss = _ctrl_c"))
    with pytest.raises(CellExecutionError, match="KeyboardInterrupt"):
        _run_notebook(interrupted, tmp_path, monkeypatch)
    out = _run_notebook(nb, tmp_path, monkeypatch)
    assert "n2c: resuming at step 2" in out
    out2 = _run_notebook(nb, tmp_path, monkeypatch)
    assert "n2c: loading the finished run" in out2 and "n2n: loading the finished run" in out2


def test_a_seconds_budget_runs_a_notebook(monkeypatch, tmp_path):
    """Notebook 04 (which once crashed on `None // 4`) with DENOISE_BUDGET=1: one second per run."""
    path = ROOT / "notebooks" / "04_noise2same.py"
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    monkeypatch.setenv("DENOISE_BUDGET", "1")
    monkeypatch.setenv("DENOISE_PROGRESS", "0")
    monkeypatch.setenv(course.RUN_CACHE_ENV, "0")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if "text" in o)
    assert "budget: seconds (1 s per training run)" in text


# ------------------------------------------------------------------ precision
def test_precision_resolution():
    assert resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("bfloat16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", "cpu")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_runs_and_is_part_of_the_checkpoint(precision, tmp_path):
    ts = _tiny_sets()
    b = Budget("t", steps=3, seconds=None, batch_size=2, patch_size=32, lr=1e-3)
    m = methods.build("n2c")
    h = fit(m, ts, b, device="cpu", precision=precision, checkpoint=tmp_path / "a.pt", progress=False)
    assert h.steps == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in h.log)
    assert all(p.dtype == torch.float32 for p in m.parameters())        # master weights stay fp32
    with pytest.raises(CheckpointError, match="precision"):
        fit(methods.build("n2c"), ts, b, device="cpu", precision="fp32", checkpoint=tmp_path / "a.pt")


def test_laine19_keeps_its_covariance_algebra_in_float64_under_autocast():
    m = methods.build("laine19-pme", channels=3, noise="gaussian:25", net={"features": 8, "depth": 2})
    y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = m.distribution(y)
        loss, _ = m.loss(data.Batch(noisy=y))
    assert d["mu"].dtype == d["sigma_x"].dtype == d["sigma_y"].dtype == torch.float64
    assert loss.dtype == torch.float64


# ------------------------------------------------------------------ the estimate
def test_estimated_flops_match_a_counted_step_of_the_whole_batch():
    from denoise_lib.train import step_flops

    run = plans.PLANS["01_noise2clean_vs_noise2noise"]["quick"][0]
    row = plans.estimate(["01_noise2clean_vs_noise2noise"], ["quick"])[0]
    m = methods.build(run.method, channels=1)
    imgs = [torch.rand(1, 1, 80, 80, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    counted = step_flops(m, type(m).training_set(imgs, "gaussian:25"), run.budget("quick"))
    assert row["step_flops"] == counted
    assert row["total_flops"] == counted * run.steps * run.repeat


def test_every_full_budget_fits_a_free_t4_session_by_the_estimate():
    rows = plans.estimate(budgets=("full",))
    t4 = f"{plans.DEVICES[0].name} {plans.DEVICES[0].precision}"
    assert plans.DEVICES[0].precision == "fp32"          # the conservative column
    per_notebook: dict = {}
    for r in rows:
        per_notebook[r["notebook"]] = per_notebook.get(r["notebook"], 0) + r["minutes"][t4]
    assert set(per_notebook) == set(plans.PLANS) - {"00_classical_baselines", "09_comparison"}  # train nothing
    assert max(per_notebook.values()) <= 40, per_notebook
    table = plans.estimate_table(rows)
    assert "TFLOP/s peak" in table and "× 35%" in table


def test_estimate_command_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "denoise_lib.course", "estimate", "--notebooks",
                          "08_deep_image_prior", "--budgets", "smoke", "quick"],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "| 08_deep_image_prior | quick | 2 |" in out and "Assumed sustained throughput" in out
    bad = subprocess.run([sys.executable, "-m", "denoise_lib.course", "estimate", "--notebooks", "nope"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "unknown notebook" in bad.stderr


def test_gpu_check_without_cuda_says_so(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert course.gpu_check("cuda") == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_gpu_check_runs_notebooks_on_the_requested_device(capsys):
    rc = course.gpu_check("cpu", notebooks=["00_classical_baselines"], tests=False)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert re.search(r"00_classical_baselines\s+[\d.]+ s  ok", out) and "all passed" in out
