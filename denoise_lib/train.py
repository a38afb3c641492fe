"""The one training loop of the library: :func:`fit`.

Every learned method trains through :func:`fit`. It handles

* the device (CUDA when present, else CPU) and the **budget** (:class:`Budget`):
  ``"smoke"`` (seconds; exercises every code path), ``"quick"`` (a few CPU
  minutes), ``"full"`` (GPU, paper-like settings) or a number of seconds; the
  environment variable ``DENOISE_BUDGET`` overrides the automatic choice;
* randomness: one ``torch.Generator`` on the training device, owned by the loop and
  handed to the method's loss as ``batch.generator``, plus the patch sampler's own;
  torch's global RNG is never read or seeded;
* Adam with a cosine learning-rate decay over the budget's progress;
* the numeric **precision** (:func:`resolve_precision`): mixed precision on CUDA
  (bfloat16 autocast where the GPU supports it, else float16 autocast with a gradient
  scaler), float32 on the CPU; methods keep their own float64 algebra (autocast never
  casts float64 tensors, and :class:`~denoise_lib.methods.laine19.Laine19` runs its
  covariance algebra with autocast off);
* a tqdm progress bar;
* **several processes** (``torchrun``): when ``torch.distributed`` is initialised, the
  method is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` (gradients
  averaged over ranks, NCCL on CUDA, gloo on the CPU); every rank draws the same global
  batch of ``budget.batch_size`` patches and trains on its own slice of it, so a run on
  N processes follows the one-process run with the same budget (the same model, up to
  the order of floating-point sums, for methods whose loss draws no random numbers; the
  others draw their masks from per-rank generators, so they agree in distribution).
  Rank 0 writes checkpoints; every rank resumes from them;
* checkpoints holding the method, optimizer, schedule, step, log, configuration and
  both generators, which resume **exactly** (same weights and losses as an
  uninterrupted run on the CPU for step budgets, also after a Ctrl-C at any point),
  loaded with ``torch.load(..., weights_only=True, map_location="cpu")``; a checkpoint
  of another configuration is refused before any training.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.std import tqdm

from . import __version__
from .data import PatchSampler, TrainingSet

if TYPE_CHECKING:  # only for annotations: the loop does not depend on the methods package
    from .methods.base import Method

__all__ = ["Budget", "History", "fit", "default_device", "bare_step_ms", "step_flops", "BUDGET_ENV",
           "CheckpointError", "check_checkpoint_path", "load_checkpoint", "run_config", "data_fingerprint",
           "resolve_precision", "PRECISIONS", "autocast", "resolve_device"]

BUDGET_ENV = "DENOISE_BUDGET"
PRECISION_ENV = "DENOISE_PRECISION"
PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_precision(precision: str | None, device: torch.device | str) -> str:
    """The training precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast, with a gradient scaler).

    ``None`` or ``"auto"`` means ``$DENOISE_PRECISION`` if set, else: on CUDA ``"bf16"``
    when the GPU supports bfloat16 (Ampere and newer) and ``"fp16"`` otherwise (e.g. a
    T4); on the CPU ``"fp32"`` (bfloat16 autocast was measured on an AVX-512-BF16 CPU
    and did not pay off; see the README's benchmark).

    Raises:
        ValueError: an unknown name, or fp16/bf16 asked for on a device that cannot run it.
    """
    device = torch.device(device)
    text = (precision or os.environ.get(PRECISION_ENV) or "auto").strip().lower()
    text = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}.get(text, text)
    if text == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if text not in PRECISIONS:
        raise ValueError(f"precision must be auto, {', '.join(PRECISIONS)}, got {precision!r}")
    if device.type not in ("cuda", "cpu") and text != "fp32":
        raise ValueError(f"mixed precision is supported on cuda and cpu, not {device.type}")
    return text


def autocast(precision: str, device: torch.device | str):
    """The autocast context of a precision (a no-op context for ``"fp32"``)."""
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def default_device() -> torch.device:
    """CUDA if available, else CPU. The environment variable ``DENOISE_DEVICE`` overrides it."""
    env = os.environ.get("DENOISE_DEVICE")
    if env:
        return torch.device(env)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """``device`` as a :class:`torch.device` (default :func:`default_device`), checked.

    Raises:
        ValueError: an unknown device string, or CUDA asked for where torch has no CUDA
            support or sees no such GPU (before any work starts).
    """
    try:
        d = torch.device(device) if device is not None else default_device()
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: {e}") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            why = "was built without CUDA" if torch.version.cuda is None else "sees no GPU"
            raise ValueError(f"device {d} was asked for, but this torch ({torch.__version__}) {why}; use cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ValueError(f"device {d} was asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    return d


@dataclass(frozen=True)
class Budget:
    """How long and how hard to train.

    Attributes:
        name: "smoke", "quick", "full", "paper" or "seconds".
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
        # a paper's own setting where a notebook defines one (its plan); elsewhere as full
        "paper": dict(steps=20_000, seconds=None, batch_size=16, patch_size=128, lr=3e-4),
    }

    @classmethod
    def resolve(cls, spec: "str | float | Budget | None" = None, device: torch.device | str | None = None) -> "Budget":
        """Turn a budget spec into a :class:`Budget`.

        Args:
            spec: "smoke", "quick", "full", "paper", a number of seconds (``180`` or ``"180"``),
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
            raise ValueError(f"budget must be smoke, quick, full, paper or seconds, got {spec!r}") from None
        if not seconds > 0 or not math.isfinite(seconds):
            raise ValueError(f"a budget in seconds must be positive, got {spec!r}")
        shape = cls.PRESETS["full" if device.type == "cuda" else "quick"]
        return cls(name="seconds", **{**shape, "steps": None, "seconds": seconds})

    def __post_init__(self):
        for k in ("steps", "batch_size", "patch_size"):
            v = getattr(self, k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"Budget.{k} must be an integer ≥ 1, got {v!r}")
        if self.steps is None and self.seconds is None:
            raise ValueError("a Budget needs a limit: steps, seconds or both (it would train forever)")
        if self.seconds is not None and not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"Budget.seconds must be positive and finite, got {self.seconds!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)) or not 0 <= self.lr_final_frac <= 1:
            raise ValueError(f"Budget.lr must be positive and lr_final_frac in [0, 1], got {self.lr!r}, "
                             f"{self.lr_final_frac!r}")

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


class CheckpointError(ValueError):
    """A checkpoint path that cannot be used, or a checkpoint that cannot be resumed."""


CHECKPOINT_FORMAT = "denoise_lib.fit/2"


def check_checkpoint_path(path) -> Path:
    """Validate a checkpoint path before any training; return it as a :class:`~pathlib.Path`.

    The file may exist (it is then resumed) or not; its folder is created if needed.

    Raises:
        CheckpointError: an empty path, a folder, a path below an existing file, or a
            folder that cannot be created or written.
    """
    if path is None or str(path).strip() == "":
        raise CheckpointError("checkpoint path is empty; give a file name such as 'run.pt'")
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a folder; give a file inside it, e.g. {path / 'run.pt'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CheckpointError(f"checkpoint path {path}: {parent} is a file, not a folder")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(path.name + ".probe")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CheckpointError(f"cannot write the checkpoint {path}: {e}") from e
    return path


def data_fingerprint(data: TrainingSet) -> str:
    """sha256 (first 16 hex digits) of a training set's kind, shapes and pixel values."""
    h = hashlib.sha256(data.kind.encode())
    for field_ in (data.noisy, data.target, data.clean):
        for x in field_ or []:
            t = x.detach().to("cpu", torch.float32).contiguous()
            h.update(str(tuple(t.shape)).encode())
            h.update(t.numpy().tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def _architecture(method) -> str:
    h = hashlib.sha256()
    for k, v in method.state_dict().items():
        h.update(f"{k}:{tuple(v.shape)};".encode())
    return h.hexdigest()[:16]


def run_config(method, data: TrainingSet, budget: Budget, seed: int, *, precision: str = "fp32") -> dict:
    """What a checkpoint must agree with to be resumed: method, its settings, network
    architecture, budget shape, seed, precision and the training data's fingerprint."""
    return {"method": method.name, "class": f"{type(method).__module__}.{type(method).__qualname__}",
            "settings": method.config, "architecture": _architecture(method),
            "budget": dataclasses.asdict(budget), "seed": int(seed), "precision": precision,
            "data": data_fingerprint(data)}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(saved: dict, current: dict) -> list[str]:
    """The fields in which two :func:`run_config` dicts differ, as readable lines."""
    a, b = _flatten(saved), _flatten(current)
    return [f"{k}: checkpoint {a.get(k, '(absent)')!r}, now {b.get(k, '(absent)')!r}"
            for k in sorted(set(a) | set(b)) if a.get(k, "(absent)") != b.get(k, "(absent)")]


def load_checkpoint(path) -> dict:
    """Read a training checkpoint written by :func:`fit` (``weights_only=True``, onto the CPU).

    Raises:
        CheckpointError: the file is not a readable torch file or not a :func:`fit` checkpoint.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt or foreign files raise many different types
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); "
                              "delete it or choose another path") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a denoise_lib training checkpoint (format "
                              f"{state.get('format') if isinstance(state, dict) else type(state).__name__!r}, "
                              f"expected {CHECKPOINT_FORMAT!r}); delete it or choose another path")
    return state


def _save(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


class _Interrupts:
    """Defers Ctrl-C (SIGINT) while the loop updates the model or writes a checkpoint.

    Active only in the main thread (where Python delivers signals). A Ctrl-C that
    arrives inside :meth:`deferred` is raised as ``KeyboardInterrupt`` when it ends, so
    an optimizer update is never cut in half.
    """

    def __init__(self):
        self.active = threading.current_thread() is threading.main_thread()
        self.pending = False

    def _handler(self, signum, frame):
        self.pending = True

    @contextlib.contextmanager
    def deferred(self):
        if not self.active:
            yield
            return
        old = signal.signal(signal.SIGINT, self._handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)
            if self.pending:
                self.pending = False
                raise KeyboardInterrupt


def _optimizer_updates(opt: torch.optim.Optimizer) -> int | None:
    """Updates the optimizer has applied (Adam's own step count), read after an interrupt."""
    for st in opt.state.values():
        if "step" in st:
            return int(st["step"])
    return 0 if not opt.state else None


class _LossModule(torch.nn.Module):
    """``forward(batch) = method.loss(batch)``: what DistributedDataParallel wraps (a method's loss
    may call its network several times, so the whole loss is the module's forward)."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, batch):
        return self.method.loss(batch)


def _world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _shard(batch, rank: int, world: int):
    """Rank ``rank``'s slice of a global batch (the same patches on every rank, one slice each)."""
    if world == 1:
        return batch
    n = batch.noisy.shape[0] // world
    part = slice(rank * n, (rank + 1) * n)
    return dataclasses.replace(batch, noisy=batch.noisy[part],
                               target=None if batch.target is None else batch.target[part],
                               clean=None if batch.clean is None else batch.clean[part])


def _rank_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank ``rank``'s loss generator at ``step`` in a multi-process run (stateless,
    so that a resumed run draws what an uninterrupted one would)."""
    return int(hashlib.sha256(f"{seed}:{rank}:{step}".encode()).hexdigest()[:15], 16)


def fit(method: "Method", data: TrainingSet, budget: "Budget | str | float | None" = None, *,
        seed: int = 0, device: torch.device | str | None = None,
        checkpoint: str | Path | None = None, checkpoint_every: int = 500,
        log_every: int = 25, progress: bool | None = None, until: int | None = None,
        precision: str | None = None) -> History:
    """Train ``method`` on ``data`` within ``budget``. The only training loop of the library.

    Args:
        method: a :class:`~denoise_lib.methods.base.Method`; trained in place.
        data: a :class:`~denoise_lib.data.TrainingSet`; the loop takes the view the
            method may see (clean images only reach methods with ``requires="clean"``).
        budget: see :meth:`Budget.resolve` (default: automatic, ``$DENOISE_BUDGET``).
        seed: seeds the loop's generator (on ``device``; it is ``batch.generator``, the
            source of every random draw of the method's loss) and the patch sampler's.
            torch's global RNG is neither read nor changed.
        device: default :func:`default_device`.
        checkpoint: file to save to every ``checkpoint_every`` steps, on an interrupt and
            at the end. If it exists, training **resumes** from it (model, optimizer,
            schedule, step, log, sampler and generator state) and continues to the
            budget, bit-identically on the CPU for step budgets, also after a Ctrl-C at
            any point. A checkpoint made with another method, settings, network, budget
            shape, seed or training data is refused, naming the differing fields.
        log_every: steps per logged mean of the loss terms.
        progress: show a tqdm bar on stderr (default: yes, unless the environment
            variable ``DENOISE_PROGRESS`` is ``0``, as when notebooks are executed for
            publication).
        until: stop after this global step even if the budget allows more (the
            schedule still follows the whole budget); with ``checkpoint``, a later
            call resumes where this one stopped. Useful for training in chunks.
        precision: ``"auto"`` (default), ``"fp32"``, ``"bf16"`` or ``"fp16"``; see
            :func:`resolve_precision`. The loss and its forward passes run under
            autocast; ``"fp16"`` adds a gradient scaler (its state is checkpointed). The
            precision is part of the checkpoint's configuration.

    Returns:
        :class:`History`.

    Raises:
        TypeError: a per-image method (fitted by its own ``denoise``), or not a method.
        ValueError: the data cannot serve the method (e.g. a self-supervised set
            for Noise2Clean), or the channel counts differ.
        CheckpointError: a bad checkpoint path, an unreadable or foreign checkpoint, or
            one whose configuration differs (all before any training).
    """
    from .methods.base import Method, PerImageMethod

    if isinstance(method, PerImageMethod):
        raise TypeError(f"{method.name} is fitted to each image by its denoise()/fit_image(); "
                        "it has no training set for fit()")
    if not isinstance(method, Method):
        raise TypeError(f"fit() trains a denoise_lib Method, got {type(method).__name__}")
    device = resolve_device(device)
    budget = Budget.resolve(budget, device)
    data = data.for_method(method.requires)
    if method.channels is not None and data.channels != method.channels:
        raise ValueError(f"{method.name} expects {method.channels}-channel images, "
                         f"the training set has {data.channels}")
    rank, world = _world()
    if budget.batch_size % world:
        raise ValueError(f"the batch of {budget.batch_size} patches cannot be split evenly over {world} processes")
    ckpt = check_checkpoint_path(checkpoint) if checkpoint is not None and rank == 0 else \
        (Path(checkpoint) if checkpoint is not None else None)
    precision = resolve_precision(precision, device)
    config = run_config(method, data, budget, seed, precision=precision)
    if world > 1:
        config["processes"] = world
    state = None
    if ckpt is not None and ckpt.is_file():
        state = load_checkpoint(ckpt)
        diff = config_differences(state["config"], config)
        if diff:
            raise CheckpointError(f"checkpoint {ckpt} was made with another configuration; delete it, "
                                  "choose another path, or train with the same settings:\n  " + "\n  ".join(diff))
    method.to(device).train()
    model = method
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(_LossModule(method), find_unused_parameters=True)
    sampler = PatchSampler(data, budget.patch_size, budget.batch_size, seed=seed + 1, device=device)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    opt = torch.optim.Adam(method.parameters(), lr=budget.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    history, step, elapsed = History(), 0, 0.0
    sums: dict = {}
    count = 0
    if state is not None:
        method.load_state_dict(state["method"])
        opt.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        sampler.load_state_dict(state["sampler"])
        gen.set_state(state["generator"])
        step, elapsed = state["schedule"]["step"], state["schedule"]["elapsed"]
        history.log = list(state["log"])
        sums = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in state["sums"].items()}
        count = state["count"]

    def snapshot() -> dict:
        return {"format": CHECKPOINT_FORMAT, "config": config, "version": __version__,
                "method": method.state_dict(), "optimizer": opt.state_dict(),
                "schedule": {"step": step, "elapsed": elapsed}, "sampler": sampler.state_dict(),
                "generator": gen.get_state(), "log": history.log, "sums": dict(sums), "count": count,
                "scaler": scaler.state_dict() if scaler.is_enabled() else {}}

    def flush_log():
        nonlocal sums, count
        if world > 1:  # the mean over ranks (a collective at each log interval, not each step)
            import torch.distributed as dist

            keys = sorted(k for k, v in sums.items() if isinstance(v, torch.Tensor))
            if keys:
                vec = torch.stack([sums[k].detach().float().reshape(()) for k in keys])
                dist.all_reduce(vec)
                sums.update({k: v / world for k, v in zip(keys, vec)})
        history.log.append({"step": step, "lr": lr, **{k: float(v) / count for k, v in sums.items()}})
        sums, count = {}, 0

    if progress is None:
        progress = os.environ.get("DENOISE_PROGRESS", "1").strip() != "0"
    start_step = step
    bar = tqdm(total=budget.steps or int(budget.seconds or 0), initial=step if budget.steps else int(elapsed),
               desc=f"{method.name} [{budget.name}]", unit="step" if budget.steps else "s",
               disable=not progress, file=sys.stderr, mininterval=1.0, leave=True)
    interrupts = _Interrupts()
    t_io, lr = 0.0, budget.lr
    loop_start = time.perf_counter()
    undo = None
    try:
        while not budget.done(step, elapsed) and (until is None or step < until):
            t0 = time.perf_counter()
            undo = (sampler.state_dict(), gen.get_state(), dict(sums), count, _optimizer_updates(opt))
            frac = budget.progress(step, elapsed)
            lr = budget.lr_at(frac)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = _shard(sampler(step), rank, world)
            if world > 1:
                gen.manual_seed(_rank_seed(seed, rank, step))
            batch.progress, batch.generator = frac, gen
            with autocast(precision, device):
                loss, logs = model(batch) if world > 1 else method.loss(batch)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            for k, v in (("loss", loss.detach().float()), *logs.items()):
                sums[k] = sums[k] + v if k in sums else v
            count += 1
            with interrupts.deferred():
                scaler.step(opt)
                scaler.update()
                step += 1
                undo = None
            if count >= log_every or budget.done(step, elapsed):
                flush_log()
                if not math.isfinite(history.log[-1]["loss"]):
                    raise FloatingPointError(f"{method.name}: loss became {history.log[-1]['loss']} at step {step}")
            elapsed += time.perf_counter() - t0
            bar.update(1) if budget.steps else bar.update(int(elapsed) - bar.n)
            if ckpt is not None and rank == 0 and checkpoint_every and step % checkpoint_every == 0:
                t1 = time.perf_counter()
                with interrupts.deferred():
                    _save(ckpt, snapshot())
                t_io += time.perf_counter() - t1
    except KeyboardInterrupt:
        if undo is not None:  # interrupted inside a step
            if _optimizer_updates(opt) != undo[4]:  # the update was applied: count the step
                step += 1
            else:  # nothing was applied: undo the step's draws and logged values
                sampler.load_state_dict(undo[0])
                gen.set_state(undo[1])
                sums, count = undo[2], undo[3]
        if count >= log_every or (count and budget.done(step, elapsed)):  # as the step would have
            flush_log()
        if ckpt is not None and rank == 0:  # keep what was trained; the next call resumes from here
            _save(ckpt, snapshot())
        raise
    finally:
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_loop = time.perf_counter() - loop_start - t_io
    if count and (ckpt is None or budget.done(step, elapsed)):
        flush_log()
    if ckpt is not None and rank == 0:
        _save(ckpt, snapshot())
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # the final checkpoint is written before any rank goes on
    history.steps, history.seconds = step, elapsed
    # a run loaded finished from its checkpoint reports its mean step time over the whole training
    history.step_ms = 1000 * (t_loop / (step - start_step) if step > start_step else elapsed / max(step, 1))
    method.eval()
    return history


def _probe_batch(method, data: TrainingSet, budget: Budget, device, seed: int):
    data = data.for_method(method.requires)
    batch = PatchSampler(data, budget.patch_size, budget.batch_size, seed=seed, device=device)()
    batch.generator = torch.Generator(device=device).manual_seed(int(seed))
    return batch


def bare_step_ms(method: "Method", data: TrainingSet, budget: "Budget | str | float | None" = None, *,
                 steps: int = 10, device: torch.device | str | None = None, seed: int = 0) -> float:
    """Time of a bare forward/backward/Adam step on one fixed batch, in milliseconds.

    The reference against which :attr:`History.step_ms` measures the loop's
    overhead (sampling, schedule, logging, progress bar). The method's weights are
    restored afterwards; torch's global RNG is not used. Two warm-up steps are not timed.
    """
    device = torch.device(device) if device is not None else default_device()
    budget = Budget.resolve(budget, device)
    was_training = method.training
    method.to(device).train()
    saved = {k: v.clone() for k, v in method.state_dict().items()}
    batch = _probe_batch(method, data, budget, device, seed)
    opt = torch.optim.Adam(method.parameters(), lr=budget.lr)
    times = []
    try:
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
    finally:
        method.load_state_dict(saved)
        method.zero_grad(set_to_none=True)
        method.train(was_training)
    return 1000 * sum(times) / len(times)


def step_flops(method: "Method", data: TrainingSet, budget: "Budget | str | float | None" = None, *,
               seed: int = 0) -> int:
    """Floating-point operations of one training step (loss forward + backward), counted.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one batch of the
    budget's size on the method's device: convolutions and matrix products (2 FLOPs per
    multiply-add), which dominate every network of this library; element-wise
    operations and the optimiser update are not counted. The harness divides it by
    N2C's count on the same U-Net to give the *expected* cost ratio of a method,
    against which its measured ``step_ms`` ratio is read. Weights are restored
    afterwards; torch's global RNG is not used.

    Returns:
        the FLOP count (int).
    """
    from torch.utils.flop_counter import FlopCounterMode

    budget = Budget.resolve(budget, torch.device("cpu"))
    device = next(iter(method.parameters()), torch.empty(0)).device
    saved = {k: v.clone() for k, v in method.state_dict().items()}
    batch = _probe_batch(method, data, budget, device, seed)
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
        method.train(was_training)
    return int(counter.get_total_flops())
