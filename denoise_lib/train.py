"""The one training loop of the library: :func:`fit`.

Every learned method trains through :func:`fit`. It handles

* the device (CUDA when present, else CPU) and the **budget** (:class:`Budget`):
  ``"smoke"`` (seconds; exercises every code path), ``"quick"`` (a few CPU
  minutes), ``"full"`` (GPU, paper-like settings) or a number of seconds; the
  environment variable ``DENOISE_BUDGET`` overrides the automatic choice;
* seeding (global torch RNG, and the patch sampler's own generator);
* Adam with a cosine learning-rate decay over the budget's progress;
* a tqdm progress bar;
* checkpoints holding the method, optimizer, schedule, step, config and every RNG
  state, which resume **exactly** (same losses as an uninterrupted run on CPU for
  step budgets), loaded with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.std import tqdm

from .data import PatchSampler, TrainingSet

if TYPE_CHECKING:  # only for annotations: the loop does not depend on the methods package
    from .methods.base import Method

__all__ = ["Budget", "History", "fit", "default_device", "bare_step_ms", "step_flops", "BUDGET_ENV"]

BUDGET_ENV = "DENOISE_BUDGET"


def default_device() -> torch.device:
    """CUDA if available, else CPU. The environment variable ``DENOISE_DEVICE`` overrides it."""
    env = os.environ.get("DENOISE_DEVICE")
    if env:
        return torch.device(env)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Budget:
    """How long and how hard to train.

    Attributes:
        name: "smoke", "quick", "full" or "seconds".
        steps: stop after this many optimiser steps (None: no step limit).
        seconds: stop after this much training time (None: no time limit).
        batch_size, patch_size: mini-batch of ``batch_size`` square patches.
        lr: peak Adam learning rate; decays with a cosine to ``lr_final_frac·lr``.
    """

    name: str
    steps: int | None
    seconds: float | None
    batch_size: int
    patch_size: int
    lr: float
    lr_final_frac: float = 0.05

    PRESETS = {  # type: ignore[misc]  (class-level table, not a field)
        "smoke": dict(steps=3, seconds=None, batch_size=2, patch_size=32, lr=1e-3),
        # On a CPU, small batches converge faster per second than large ones at the same
        # pixel throughput (measured on held-out BSD400 images, not on a test set).
        "quick": dict(steps=1000, seconds=None, batch_size=4, patch_size=64, lr=1e-3),
        "full": dict(steps=20_000, seconds=None, batch_size=16, patch_size=128, lr=3e-4),
    }

    @classmethod
    def resolve(cls, spec: "str | float | Budget | None" = None, device: torch.device | str | None = None) -> "Budget":
        """Turn a budget spec into a :class:`Budget`.

        Args:
            spec: "smoke", "quick", "full", a number of seconds (``180`` or ``"180"``),
                a :class:`Budget`, or None: then ``$DENOISE_BUDGET`` if set, else
                "full" on CUDA and "quick" on CPU.
            device: used for the automatic choice and for the batch shape of a
                seconds budget (quick's on CPU, full's on CUDA).

        Raises:
            ValueError: an unknown name or a non-positive number of seconds.
        """
        if isinstance(spec, Budget):
            return spec
        device = torch.device(device) if device is not None else default_device()
        if spec is None:
            spec = os.environ.get(BUDGET_ENV) or ("full" if device.type == "cuda" else "quick")
        text = str(spec).strip().lower()
        if text in cls.PRESETS:
            return cls(name=text, **cls.PRESETS[text])
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"budget must be smoke, quick, full or seconds, got {spec!r}") from None
        if not seconds > 0 or not math.isfinite(seconds):
            raise ValueError(f"a budget in seconds must be positive, got {spec!r}")
        shape = cls.PRESETS["full" if device.type == "cuda" else "quick"]
        return cls(name="seconds", **{**shape, "steps": None, "seconds": seconds})

    def replace(self, **changes) -> "Budget":
        """A copy with some fields changed (e.g. ``budget.replace(steps=200)``)."""
        return dataclasses.replace(self, **changes)

    def progress(self, step: int, elapsed: float) -> float:
        """Fraction of the budget used, in [0, 1]: the larger of steps and time."""
        p = 0.0
        if self.steps:
            p = max(p, step / self.steps)
        if self.seconds:
            p = max(p, elapsed / self.seconds)
        return min(p, 1.0)

    def lr_at(self, progress: float) -> float:
        """Cosine decay from ``lr`` to ``lr_final_frac·lr`` over progress ∈ [0, 1]."""
        f = self.lr_final_frac
        return self.lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * progress)))

    def done(self, step: int, elapsed: float) -> bool:
        return (self.steps is not None and step >= self.steps) or (
            self.seconds is not None and elapsed >= self.seconds)


@dataclass
class History:
    """What :func:`fit` measured.

    Attributes:
        steps: optimiser steps taken in total (including resumed ones).
        seconds: training time in seconds (loop only; excludes set-up and checkpoint I/O).
        step_ms: mean wall time of one step in milliseconds (this call's steps only).
        log: list of ``{"step": int, name: float, ...}``, mean logged values per interval.
    """

    steps: int = 0
    seconds: float = 0.0
    step_ms: float = float("nan")
    log: list[dict] = field(default_factory=list)

    def series(self, key: str = "loss") -> tuple[list[int], list[float]]:
        """(steps, values) of one logged quantity."""
        pts = [(r["step"], r[key]) for r in self.log if key in r]
        return [p[0] for p in pts], [p[1] for p in pts]


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(path: Path, method, opt, sampler, step, elapsed, budget, seed, history) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "method": method.state_dict(), "optimizer": opt.state_dict(),
        "schedule": {"step": step, "elapsed": elapsed},
        "config": {"method": method.name, "budget": dataclasses.asdict(budget), "seed": seed},
        "sampler": sampler.state_dict(), "rng": _rng_state(),
        "log": history.log,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def fit(method: "Method", data: TrainingSet, budget: "Budget | str | float | None" = None, *,
        seed: int = 0, device: torch.device | str | None = None,
        checkpoint: str | Path | None = None, checkpoint_every: int = 500,
        log_every: int = 25, progress: bool = True, until: int | None = None) -> History:
    """Train ``method`` on ``data`` within ``budget``. The only training loop of the library.

    Args:
        method: a :class:`~denoise_lib.methods.base.Method`; trained in place.
        data: a :class:`~denoise_lib.data.TrainingSet`; the loop takes the view the
            method may see (clean images only reach methods with ``requires="clean"``).
        budget: see :meth:`Budget.resolve` (default: automatic, ``$DENOISE_BUDGET``).
        seed: seeds the global torch RNG (used by methods for masks etc.) and the
            patch sampler.
        device: default :func:`default_device`.
        checkpoint: file to save to every ``checkpoint_every`` steps and at the end.
            If it exists, training **resumes** from it (model, optimizer, schedule,
            step, sampler and RNG state) and continues to the budget.
        log_every: steps per logged mean of the loss terms.
        progress: show a tqdm bar on stderr.
        until: stop after this global step even if the budget allows more (the
            schedule still follows the whole budget); with ``checkpoint``, a later
            call resumes where this one stopped. Useful for training in chunks.

    Returns:
        :class:`History`.

    Raises:
        ValueError: the data cannot serve the method (e.g. a self-supervised set
            for Noise2Clean), or the checkpoint belongs to another method.
    """
    device = torch.device(device) if device is not None else default_device()
    budget = Budget.resolve(budget, device)
    data = data.for_method(method.requires)
    if method.channels is not None and data.channels != method.channels:
        raise ValueError(f"{method.name} expects {method.channels}-channel images, "
                         f"the training set has {data.channels}")
    torch.manual_seed(seed)
    method.to(device).train()
    sampler = PatchSampler(data, budget.patch_size, budget.batch_size, seed=seed + 1, device=device)
    opt = torch.optim.Adam(method.parameters(), lr=budget.lr)
    history, step, elapsed = History(), 0, 0.0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state["config"]["method"] != method.name:
            raise ValueError(f"checkpoint {ckpt} is for {state['config']['method']!r}, not {method.name!r}")
        method.load_state_dict(state["method"])
        opt.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        _set_rng_state(state["rng"])
        step, elapsed = state["schedule"]["step"], state["schedule"]["elapsed"]
        history.log = list(state["log"])
    start_step = step
    bar = tqdm(total=budget.steps or int(budget.seconds or 0), initial=step if budget.steps else int(elapsed),
               desc=f"{method.name} [{budget.name}]", unit="step" if budget.steps else "s",
               disable=not progress, file=sys.stderr, mininterval=1.0, leave=True)
    sums: dict[str, torch.Tensor] = {}
    count, t_io, lr = 0, 0.0, budget.lr
    loop_start = time.perf_counter()
    try:
        while not budget.done(step, elapsed) and (until is None or step < until):
            t0 = time.perf_counter()
            frac = budget.progress(step, elapsed)
            lr = budget.lr_at(frac)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = sampler(step)
            batch.progress = frac
            loss, logs = method.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            for k, v in (("loss", loss.detach()), *logs.items()):
                sums[k] = sums[k] + v if k in sums else v
            count += 1
            if count == log_every or budget.done(step, elapsed):
                history.log.append({"step": step, "lr": lr, **{k: float(v) / count for k, v in sums.items()}})
                if not math.isfinite(history.log[-1]["loss"]):
                    raise FloatingPointError(f"{method.name}: loss became {history.log[-1]['loss']} at step {step}")
                sums, count = {}, 0
            elapsed += time.perf_counter() - t0
            bar.update(1) if budget.steps else bar.update(int(elapsed) - bar.n)
            if ckpt is not None and checkpoint_every and step % checkpoint_every == 0:
                t1 = time.perf_counter()
                _save(ckpt, method, opt, sampler, step, elapsed, budget, seed, history)
                t_io += time.perf_counter() - t1
    except KeyboardInterrupt:
        if ckpt is not None:  # keep what was trained; the next call resumes from here
            _save(ckpt, method, opt, sampler, step, elapsed, budget, seed, history)
        raise
    finally:
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_loop = time.perf_counter() - loop_start - t_io
    if count:
        history.log.append({"step": step, "lr": lr, **{k: float(v) / count for k, v in sums.items()}})
    if ckpt is not None:
        _save(ckpt, method, opt, sampler, step, elapsed, budget, seed, history)
    history.steps, history.seconds = step, elapsed
    history.step_ms = 1000 * t_loop / max(step - start_step, 1)
    method.eval()
    return history


def bare_step_ms(method: "Method", data: TrainingSet, budget: "Budget | str | float | None" = None, *,
                 steps: int = 10, device: torch.device | str | None = None, seed: int = 0) -> float:
    """Time of a bare forward/backward/Adam step on one fixed batch, in milliseconds.

    The reference against which :attr:`History.step_ms` measures the loop's
    overhead (sampling, schedule, logging, progress bar). The method's weights are
    restored afterwards. Two warm-up steps are not timed.
    """
    device = torch.device(device) if device is not None else default_device()
    budget = Budget.resolve(budget, device)
    data = data.for_method(method.requires)
    was_training = method.training
    method.to(device).train()
    saved = {k: v.clone() for k, v in method.state_dict().items()}
    rng = torch.get_rng_state()
    torch.manual_seed(seed)
    batch = PatchSampler(data, budget.patch_size, budget.batch_size, seed=seed, device=device)()
    opt = torch.optim.Adam(method.parameters(), lr=budget.lr)
    times = []
    for i in range(steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = method.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    method.load_state_dict(saved)
    torch.set_rng_state(rng)
    method.train(was_training)
    return 1000 * sum(times) / len(times)


def step_flops(method: "Method", data: TrainingSet, budget: "Budget | str | float | None" = None, *,
               seed: int = 0) -> int:
    """Floating-point operations of one training step (loss forward + backward), counted.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one batch of the
    budget's size on the CPU: convolutions and matrix products (2 FLOPs per
    multiply-add), which dominate every network of this library; element-wise
    operations and the optimiser update are not counted. The harness divides it by
    N2C's count on the same U-Net to give the *expected* cost ratio of a method,
    against which its measured ``step_ms`` ratio is read. Weights and the global RNG
    are restored afterwards.

    Returns:
        the FLOP count (int).
    """
    from torch.utils.flop_counter import FlopCounterMode

    budget = Budget.resolve(budget, torch.device("cpu"))
    data = data.for_method(method.requires)
    device = next(iter(method.parameters()), torch.empty(0)).device
    saved = {k: v.clone() for k, v in method.state_dict().items()}
    rng = torch.get_rng_state()
    torch.manual_seed(seed)
    batch = PatchSampler(data, budget.patch_size, budget.batch_size, seed=seed, device=device)()
    was_training = method.training
    method.train()
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            loss, _ = method.loss(batch)
            loss.backward()
    finally:
        method.zero_grad(set_to_none=True)
        method.load_state_dict(saved)
        torch.set_rng_state(rng)
        method.train(was_training)
    return int(counter.get_total_flops())
