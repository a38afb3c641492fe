"""Multi-process training with torchrun: two gloo processes on the CPU against one process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from imagehelpers import smooth_images
from denoise_lib import methods
from denoise_lib.train import Budget, fit

HERE = Path(__file__).resolve().parent


def torchrun(tmp_path, *args, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                        str(HERE / "ddp_worker.py"), *map(str, args)], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def one_process(name, steps, batch):
    m = methods.build(name, channels=1, noise="gaussian:25", patch_size=32, net={"features": 8, "depth": 2})
    ts = methods.method_class(name).training_set(smooth_images(3, size=(48, 56), seed=4), "gaussian:25", seed=0)
    h = fit(m, ts, Budget("t", steps=steps, seconds=None, batch_size=batch, patch_size=32, lr=1e-3),
            device="cpu", progress=False)
    return m.state_dict(), h


def max_diff(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_two_processes_train_the_model_of_one_process_with_the_whole_batch(tmp_path):
    """N2C's loss draws nothing at random: the 2-process run (2 patches per rank) follows the
    1-process run (4 patches) up to the order of floating-point sums in the gradient average."""
    torchrun(tmp_path, "n2c", 5, 4, tmp_path / "ddp.pt")
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    ref, h = one_process("n2c", 5, 4)
    assert ddp["steps"] == 5
    assert max_diff(ddp["state"], ref) < 1e-5
    other, _ = one_process("n2c", 5, 2)               # not a trivially small tolerance:
    assert max_diff(other, ref) > 1e-3                # half the batch gives another model
    assert abs(ddp["log"][-1]["loss"] - h.log[-1]["loss"]) < 1e-5


def test_a_distributed_run_resumes_from_its_checkpoint(tmp_path):
    """Rank 0 writes the checkpoint; a second torchrun launch continues to the same model."""
    torchrun(tmp_path, "n2v", 6, 4, tmp_path / "full.pt")
    torchrun(tmp_path, "n2v", 6, 4, tmp_path / "part.pt", tmp_path / "run.ckpt", 3)
    part = torch.load(tmp_path / "part.pt", weights_only=True)
    assert part["steps"] == 3
    torchrun(tmp_path, "n2v", 6, 4, tmp_path / "resumed.pt", tmp_path / "run.ckpt")
    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert b["steps"] == 6
    assert max_diff(a["state"], b["state"]) < 1e-6


def test_a_batch_that_cannot_be_split_is_refused(tmp_path):
    with pytest.raises(AssertionError, match="cannot be split evenly"):
        torchrun(tmp_path, "n2c", 2, 3, tmp_path / "x.pt")


def test_torchrun_of_the_command_line_trains_the_one_process_model(tmp_path):
    """`torchrun -m denoise_lib.cli train` with two gloo processes, against the same command in one."""
    from denoise_lib.cli import load_model
    from denoise_lib.image import write_image

    for sub in ("noisy", "clean"):
        (tmp_path / sub).mkdir()
    for i, x in enumerate(smooth_images(3, size=(48, 56), seed=4)):
        write_image(tmp_path / "clean" / f"{i}.png", x)
        write_image(tmp_path / "noisy" / f"{i}.png", (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(i))).clamp(0, 1))
    args = ["train", "--method", "n2c", "--noisy", "noisy", "--clean", "clean", "--steps", "4", "--batch-size", "4",
            "--patch-size", "32", "--features", "8", "--depth", "2", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "denoise_lib.cli", *args, "--out", "two.pt"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "denoise_lib.cli", *args, "--out", "one.pt"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = load_model(tmp_path / "two.pt"), load_model(tmp_path / "one.pt")
    assert max_diff(a.state_dict(), b.state_dict()) < 1e-5
    assert not (tmp_path / "two.pt.ckpt").exists()
