"""The comparison of Part 9: every method under one protocol, on a list of configurations, resumable.

Command line::

    python -m denoise_lib.compare --preset cpu                  # every configuration (see the README)
    python -m denoise_lib.compare --preset gpu --device cuda    # the full budget, whole test sets
    python -m denoise_lib.compare --preset tiny --configs bsd68-gaussian25
    python -m denoise_lib.compare --preset cpu --list           # the cells, and why some are absent
    python -m denoise_lib.compare --estimate cpu --from book/results/compare/tiny

A **configuration** (:data:`CONFIGURATIONS`) is a noise model on a test set: Gaussian σ = 15,
25, 50 (0–255 scale), a blind range σ ∈ [5, 50], Poisson λ = 30 and speckle v = 0.1, on the grey
BSD68 set (trained on BSD400) and on the colour CBSD68 set (trained on the 200 colour BSD300
training images). A **cell** is one method in one configuration. Every registered method
(:func:`denoise_lib.bench.known_methods`) has a cell in every configuration file: either
measured (``"status": "done"``) or absent with the reason (``"not applicable"``: the method
cannot take this noise, with the method's own error message; ``"excluded"``: an ablation
variant of a compared method; ``"not run"``: left out by the preset's budget or by
``--methods``; ``"pending"``: not measured yet, in a file whose run was interrupted).

Protocol (stated once, the same for every cell):

* the default network of each method (the same U-Net for every method that trains one;
  Laine19's four-branch blind-spot network; DIP's small U-Net), built with the training seed;
* one fixed noisy draw of the training images per seed (:meth:`Method.training_set`: N2C also
  sees the clean images, N2N a second draw, Self2Align simulated misaligned pairs, the
  self-supervised methods only the noisy draw); Adam with the cosine schedule of
  :func:`denoise_lib.train.fit` and the preset's step budget;
* test noise drawn with the fixed seeds ``TEST_NOISE_SEED + d`` for draw ``d`` (the same for
  every method and seed); 8-bit PSNR and scikit-image SSIM (:mod:`denoise_lib.metrics`), mean
  ± standard error over images × draws × seeds;
* classical methods get the true σ for fixed-σ Gaussian noise and estimate it otherwise;
* the **frontier**: training runs in chunks of ``eval_every`` steps (``fit(..., until=…,
  checkpoint=…)``, the schedule follows the whole budget, so the chunks train exactly what one
  call would); between chunks the PSNR on a fixed validation set (centre crops of BSD300 test
  images that are not in BSD68/CBSD68, one fixed noise draw) is logged with the step, the
  measured training seconds and the wall time;
* cost: counted FLOPs of one training step (:func:`denoise_lib.train.step_flops`) and a short
  quiet-step calibration (:func:`denoise_lib.train.bare_step_ms`), so that time can be read as
  ``steps × bare_step_ms`` (a time axis not distorted by the machine's load during training)
  as well as in measured seconds.

Results: one JSON file per configuration, ``<out>/<configuration>.json``, written after each
cell (atomically). A rerun skips the finished cells and runs only the missing ones; a file
made with other settings (budget, data, seeds, library source, …) is refused, naming the
differing fields (``--fresh`` discards it). Every file holds its provenance: git commit,
library source hash, machine and CPU, threads, torch version, load average before and after
each cell, dates and wall times.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import bench, classical, data, methods, metrics
from .image import as_image
from .noise import Gaussian, parse_noise
from .train import Budget, bare_step_ms, fit, resolve_device, resolve_precision, step_flops

__all__ = ["Configuration", "Preset", "CONFIGURATIONS", "PRESETS", "COMPARED", "EXCLUDED", "SettingsMismatch",
           "settings", "plan", "run_configuration", "run", "load_results", "estimate", "quiet_factors", "stable_cells", "main",
           "FORMAT", "parse_options", "TEST_NOISE_SEED", "VAL_NOISE_SEED", "source_hash", "machine"]

FORMAT = "denoise_lib.compare/1"
TEST_NOISE_SEED = 1000   # draw d of the test noise uses TEST_NOISE_SEED + d (the course's test noise for d = 0)
VAL_NOISE_SEED = 2000    # the validation noise of the frontier
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "book" / "results" / "compare"

#: The methods the comparison measures, in table order.
COMPARED = ["noisy", "bm3d", "nlm", "tv", "n2c", "n2n", "n2v", "n2s", "noise2same", "laine19-mu", "laine19-pme",
            "nb2nb", "svid", "self2align", "dip"]

#: Registered names left out of the comparison, with the reason (each is studied in its own Part).
EXCLUDED = {
    "n2s-unmasked": "the unmasked self-supervised loss of Part 2, which learns the identity by design "
                    "(the collapse the blind spot prevents); not a denoiser to compare",
    "laine19-percomp": "an ablation of Laine19 (per-component covariance, their Table 1), studied in Part 3",
    "laine19-l2": "an ablation of Laine19 (L2 loss, no posterior mean, their Table 1), studied in Part 3",
    "nb2nb-fixed": "an ablation of Neighbor2Neighbor (fixed-location sub-sampler, their Table 4), studied in Part 5",
    "svid-nostopgrad": "an ablation of SVID (no stop-gradient), studied in Part 7",
    "dip-y": "the noisy-input variant of Deep Image Prior, studied in Part 8; the comparison uses the random input",
}

# fields of a cell that change from run to run (times, loads, dates): not part of what a resumed
# run must reproduce
VOLATILE = ("train_seconds", "step_ms", "bare_step_ms", "test_seconds", "provenance", "seconds", "wall",
            "fit_seconds")


@dataclass(frozen=True)
class Configuration:
    """One noise model on one test set.

    Attributes:
        name: e.g. ``"bsd68-gaussian25"``.
        noise: a noise spec (:func:`denoise_lib.noise.parse_noise`).
        test, train: data sources (:func:`denoise_lib.data.load`).
        channels: 1 or 3 (both sets are converted to it).
        validation: ``"bsd300-heldout"`` (the BSD300 test images that are not in BSD68/CBSD68)
            or any :func:`denoise_lib.data.load` source.
    """

    name: str
    noise: str
    test: str
    train: str
    channels: int
    validation: str = "bsd300-heldout"


def _configurations() -> list[Configuration]:
    noises = [("gaussian15", "gaussian:15"), ("gaussian25", "gaussian:25"), ("gaussian50", "gaussian:50"),
              ("gaussian5-50", "gaussian:5-50"), ("poisson30", "poisson:30"), ("speckle0.1", "speckle:0.1")]
    out = []
    for test, train, ch in (("bsd68", "bsd400", 1), ("cbsd68", "bsd300_train", 3)):
        out += [Configuration(f"{test}-{tag}", spec, test, train, ch) for tag, spec in noises]
    return out


#: Every configuration of the comparison: six noise models × {grey BSD68, colour CBSD68}.
CONFIGURATIONS: list[Configuration] = _configurations()


@dataclass(frozen=True)
class Preset:
    """The budget of a comparison run.

    Attributes:
        name: preset name.
        steps, batch_size, patch_size, lr: the training budget of every learned method.
        eval_every: steps between two frontier points.
        test_images: the first N test images (None: all); test_crop: centre crop side (None: whole).
        val_images, val_crop: the validation set of the frontier (first N held-out images, centre crops).
        draws: test noise draws; seeds: training seeds (each: its own noisy draw and initial weights).
        train_limit: use the first N training images (None: all).
        calibration_steps: timed steps of the quiet-step calibration.
        dip_images: DIP is fitted to the first N test images only (None: all).
        dip_iterations: DIP's iterations per image (None: the method's default).
        dip_configs: the configurations where DIP runs (None: all).
        bm3d_colour_images: BM3D on colour images runs on the first N test images only (None: all).
    """

    name: str
    steps: int
    batch_size: int
    patch_size: int
    lr: float
    eval_every: int
    test_images: int | None
    val_images: int
    val_crop: int
    draws: int = 1
    seeds: tuple = (0,)
    test_crop: int | None = None
    train_limit: int | None = None
    calibration_steps: int = 5
    dip_images: int | None = None
    dip_iterations: int | None = None
    dip_configs: tuple | None = None
    bm3d_colour_images: int | None = None
    note: str = ""

    def budget(self) -> Budget:
        return Budget(name=f"compare-{self.name}", steps=self.steps, seconds=None, batch_size=self.batch_size,
                      patch_size=self.patch_size, lr=self.lr)


PRESETS: dict[str, Preset] = {p.name: p for p in [
    # the timing run (the batch shape of cpu, whole test images) and the notebook's development set
    Preset("tiny", steps=20, batch_size=4, patch_size=64, lr=1e-3, eval_every=5, test_images=2, val_images=2,
           val_crop=96, train_limit=64, calibration_steps=3, dip_images=1, dip_iterations=20,
           note="a timing run: 20 steps, 2 test images; its numbers are not results"),
    # ≈ an hour on a quiet 2-core CPU for all twelve configurations (README)
    Preset("cpu", steps=120, batch_size=4, patch_size=64, lr=1e-3, eval_every=15, test_images=4, val_images=4,
           val_crop=96, calibration_steps=5, dip_images=1, dip_configs=("bsd68-gaussian25",), bm3d_colour_images=2,
           note="120 steps of batch 4 × 64² per method, the first 4 test images, one draw; DIP on one image of "
                "bsd68-gaussian25, colour BM3D on the first 2 images"),
    # the disagreement runs of Part 9: a few methods on one configuration, 1000 steps (the course's
    # quick budget), 12 test images; ≈ 15 min on a quiet 2-core CPU for n2c n2v noise2same nb2nb svid
    Preset("cpu-long", steps=1000, batch_size=4, patch_size=64, lr=1e-3, eval_every=100, test_images=12,
           val_images=4, val_crop=96, calibration_steps=5, dip_images=1, dip_configs=(), bm3d_colour_images=2,
           note="1000 steps of batch 4 × 64² (the quick budget), the first 12 test images, one draw; for a few "
                "methods on one configuration (--methods, --configs); DIP not run"),
    # the library's full budget on whole test sets, for a GPU
    Preset("gpu", steps=20_000, batch_size=16, patch_size=128, lr=3e-4, eval_every=1000, test_images=None,
           val_images=8, val_crop=256, draws=2, seeds=(0, 1, 2), calibration_steps=10, dip_images=8,
           dip_iterations=3000, note="the full budget (20 000 steps of 16 × 128²), all 68 test images, "
                                     "2 draws, 3 seeds; DIP (3000 iterations) on the first 8 images"),
]}


class SettingsMismatch(ValueError):
    """A results file made with other settings than the current run's."""


# ----------------------------------------------------------------------------------------------
# provenance


def source_hash() -> str:
    """sha256 (16 hex digits) of the library's source that computes results (every ``denoise_lib``
    ``.py`` file except the course layer ``denoise_lib/course/``, which only presents them)."""
    h = hashlib.sha256()
    pkg = ROOT / "denoise_lib"
    for f in sorted(pkg.rglob("*.py")):
        rel = f.relative_to(pkg).as_posix()
        if rel.startswith("course/"):
            continue
        h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine(device: torch.device | None = None) -> dict:
    """The machine and software a run used (JSON-ready)."""
    out = {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
           "threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
           "numpy": np.__version__, "scikit-image": _version("scikit-image"), "bm3d": _version("bm3d")}
    if device is not None and device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------
# settings and plan


def _test_names(source: str, n: int | None) -> list[str]:
    try:
        files = data.registry.get(source).files
    except KeyError:
        return [f"{source}[{i}]" for i in range(len(data.load(source, limit=n)))]
    return files[:n] if n is not None else files


def settings(config: Configuration, preset: Preset, *, device: torch.device | str = "cpu",
             precision: str | None = None, options: dict | None = None) -> dict:
    """Everything a cell's numbers depend on (JSON-ready: tuples become lists); a results file is
    resumed only with equal settings. ``options``: ``{method: {keyword: value}}`` passed to
    :func:`denoise_lib.methods.build` (``--option``), recorded as ``method_options``."""
    device = resolve_device(device)
    return json.loads(json.dumps({"format": FORMAT, "configuration": dataclasses.asdict(config), "noise": parse_noise(config.noise).spec,
            "preset": dataclasses.asdict(preset), "budget": dataclasses.asdict(preset.budget()),
            "test_files": _test_names(config.test, preset.test_images),
            "test_noise_seeds": [TEST_NOISE_SEED + d for d in range(preset.draws)],
            "validation_noise_seed": VAL_NOISE_SEED, "device": device.type,
            "precision": resolve_precision(precision, device), "method_options": options or {},
            "library_source": source_hash()}))


def _differences(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k, "(absent)"), b.get(k, "(absent)"), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: file {a!r}, now {b!r}"]


def _known_sigma(model) -> float | None:
    if isinstance(model, Gaussian) and model.sigma_range[0] == model.sigma_range[1]:
        return model.sigma_range[0]
    return None


def plan(config: Configuration, preset: Preset, names: list[str] | None = None,
         options: dict | None = None) -> dict[str, tuple[str, str]]:
    """What each registered method gets in ``config``: ``{name: (status, reason)}``.

    status is ``"run"``, ``"not applicable"``, ``"excluded"`` or ``"not run"``; names outside
    ``names`` (default: every compared method) are ``"not run"`` with the reason "not selected".
    Building a learned method here is what checks that it can take the noise (and its ``options``).

    Raises:
        ValueError: an option names a method that is not run, or a keyword its constructor does
            not take.
    """
    model = parse_noise(config.noise)
    options = options or {}
    chosen = COMPARED if names is None else names
    out = {}
    for name in bench.known_methods():
        if name in EXCLUDED:
            out[name] = ("excluded", EXCLUDED[name])
        elif name not in COMPARED:
            out[name] = ("excluded", "not among the compared methods")
        elif name not in chosen:
            out[name] = ("not run", "not selected for this run (--methods)")
        elif name == "dip" and preset.dip_configs is not None and config.name not in preset.dip_configs:
            where = (f"runs only in {', '.join(preset.dip_configs)}" if preset.dip_configs
                     else "does not run")
            out[name] = ("not run", f"budget: in the {preset.name} preset DIP, which is fitted afresh to every test "
                                    f"image, {where}")
        elif name in methods.available():
            try:
                methods.build(name, channels=config.channels, noise=model, patch_size=preset.patch_size,
                              **options.get(name, {}))
            except TypeError as e:
                raise ValueError(f"--option for {name}: {e}") from None
            except ValueError as e:
                out[name] = ("not applicable", f"{name} cannot take {model.spec} noise: {e}")
                continue
            out[name] = ("run", "")
        else:
            out[name] = ("run", "")
    stray = [m for m in options if out.get(m, ("",))[0] != "run"]
    if stray:
        raise ValueError(f"--option given for method(s) not run here: {', '.join(stray)}")
    return out


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class _Data:
    model: object
    test_clean: list
    test_noisy: list          # [draw][image]
    test_files: list
    val_clean: list
    val_noisy: list
    train: list = field(default_factory=list)


def _centre(x: torch.Tensor, side: int | None) -> torch.Tensor:
    if side is None:
        return x
    h, w = x.shape[-2:]
    s_h, s_w = min(side, h), min(side, w)
    t, l = (h - s_h) // 2, (w - s_w) // 2
    return x[..., t:t + s_h, l:l + s_w].contiguous()


def _validation(config: Configuration, preset: Preset) -> list[torch.Tensor]:
    if config.validation == "bsd300-heldout":
        reg = data.registry
        ds, used = reg.get("bsd300"), set(reg.get("cbsd68").files)
        entries = [e for e in ds.entries if e.file not in used][:preset.val_images]
        imgs = [as_image(a, channels=config.channels) for a in reg.fetch_many(ds, entries)]
    else:
        imgs = data.load(config.validation, channels=config.channels, limit=preset.val_images)
    return [_centre(x, preset.val_crop) for x in imgs]


def _load(config: Configuration, preset: Preset, need_train: bool) -> _Data:
    model = parse_noise(config.noise)
    clean = [_centre(x, preset.test_crop) for x in data.load(config.test, channels=config.channels,
                                                             limit=preset.test_images)]
    noisy = [data.add_noise(clean, model, seed=TEST_NOISE_SEED + d) for d in range(preset.draws)]
    val = _validation(config, preset)
    val_noisy = data.add_noise(val, model, seed=VAL_NOISE_SEED)
    train = data.load(config.train, channels=config.channels, limit=preset.train_limit) if need_train else []
    return _Data(model, clean, noisy, _test_names(config.test, preset.test_images), val, val_noisy, train)


# ----------------------------------------------------------------------------------------------
# measuring


def _stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64).ravel()
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return {"mean": float(v.mean()), "se": se, "n": int(v.size)}


def _score(denoise, noisy_draws, clean, limit=None) -> tuple[list, list, float]:
    """Per-image PSNR and SSIM ``[draw][image]`` and the seconds it took."""
    ps, ss, t0 = [], [], time.perf_counter()
    for draw in noisy_draws:
        p, s = [], []
        for y, x in list(zip(draw, clean))[:limit]:
            out = denoise(y)
            p.append(metrics.psnr(out, x))
            s.append(metrics.ssim(out, x))
        ps.append(p)
        ss.append(s)
    return ps, ss, time.perf_counter() - t0


def _val_psnr(denoise, d: _Data) -> float:
    return float(np.mean([metrics.psnr(denoise(y), x) for y, x in zip(d.val_noisy, d.val_clean)]))


def _load_avg():
    return bench._load_average()


def _summarise(row: dict, ps: list, ss: list) -> None:
    row["psnr"], row["ssim"] = _stats(ps), _stats(ss)
    row["per_image"] = {"psnr": ps, "ssim": ss}


def _cell_reference(name: str, d: _Data, config: Configuration, preset: Preset) -> dict:
    sigma = _known_sigma(d.model)
    limit = preset.bm3d_colour_images if name == "bm3d" and config.channels == 3 else None
    if name == "noisy":
        fn, note = (lambda y: y), "the noisy input itself"
    else:
        f = classical.CLASSICAL[name]
        fn = lambda y: f(y, sigma)  # noqa: E731
        note = "σ known" if sigma is not None else "σ estimated per image (wavelet MAD)"
    ps, ss, secs = _score(fn, d.test_noisy, d.test_clean, limit)
    n = len(ps[0])
    if n < len(d.test_clean):
        note += (f"; on the first {n} of the {len(d.test_clean)} test images only (budget: colour BM3D took "
                 f"{secs / max(1, n * len(d.test_noisy)):.0f} s per image here)")
    row = {"method": name, "status": "done", "kind": "reference" if name == "noisy" else "classical",
           "note": note, "steps": 0, "test_seconds": secs, "test_images": n,
           "val_psnr": _val_psnr(fn, d)}
    _summarise(row, [ps], [ss])
    return row


def _cell_dip(name: str, config: Configuration, preset: Preset, d: _Data, device, options: dict) -> dict:
    n = preset.dip_images if preset.dip_images is not None else len(d.test_clean)
    n = min(n, len(d.test_clean))
    ps_all, ss_all, curves, secs = [], [], [], 0.0
    for seed in preset.seeds:
        method = methods.build(name, channels=config.channels, noise=d.model, seed=seed, **options.get(name, {}))
        if preset.dip_iterations is not None:
            method.iterations = int(preset.dip_iterations)
        method.to(device)
        every = max(1, method.iterations // 20)
        ps, ss = [], []
        for draw in d.test_noisy:
            p, s = [], []
            for i, (y, x) in enumerate(list(zip(draw, d.test_clean))[:n]):
                out, hist = method.fit_image(y, clean=x, record_every=every)
                secs += hist.seconds
                p.append(metrics.psnr(out, x))
                s.append(metrics.ssim(out, x))
                if seed == preset.seeds[0] and draw is d.test_noisy[0]:
                    curves.append({"image": d.test_files[i], "iteration": hist.iterations, "psnr": hist.psnr,
                                   "seconds_per_iteration": hist.seconds / max(method.iterations, 1)})
            ps.append(p)
            ss.append(s)
        ps_all.append(ps)
        ss_all.append(ss)
    row = {"method": name, "status": "done", "kind": "per-image", "steps": method.iterations,
           "params": sum(p.numel() for p in method.parameters()), "network": type(method.net).__name__,
           "test_seconds": secs, "test_images": n, "fit_seconds_per_image": secs / max(1, n * len(d.test_noisy)
                                                                                      * len(preset.seeds)),
           "note": f"fitted afresh to each of the first {n} test image(s) for a fixed {method.iterations} "
                   "iterations (no training set; its early stop would need the clean image); test seconds = "
                   "fitting time", "dip_curves": curves}
    _summarise(row, ps_all, ss_all)
    return row


def _chunks(steps: int, every: int) -> list[int]:
    pts = list(range(every, steps + 1, every))
    if not pts or pts[-1] != steps:
        pts.append(steps)
    return pts


def _cell_trained(names: list[str], config: Configuration, preset: Preset, d: _Data, device, work: Path,
                  precision, log, options: dict) -> dict[str, dict]:
    """Train once (per seed) for a group of names that share a training run; one row per name."""
    bud = preset.budget()
    first = names[0]
    rows = {n: {"method": n, "status": "done", "kind": "trained", "runs": []} for n in names}
    for seed in preset.seeds:
        built = {n: methods.build(n, channels=config.channels, noise=d.model, patch_size=bud.patch_size, seed=seed,
                                  **options.get(n, {})) for n in names}
        method = built[first]
        train_set = type(method).training_set(d.train, d.model, seed=seed)
        bare = bare_step_ms(method, train_set, bud, steps=preset.calibration_steps, device=device, seed=seed)
        gflops = step_flops(method.cpu(), train_set, bud, seed=seed) / 1e9
        ckpt = work / f"{config.name}--{first}--seed{seed}.pt"
        ckpt.unlink(missing_ok=True)
        frontier = {n: {"seed": seed, "step": [], "seconds": [], "wall": [], "val_psnr": []} for n in names}
        t0 = time.perf_counter()
        hist = None
        try:
            for until in _chunks(bud.steps, preset.eval_every):
                hist = fit(method, train_set, bud, seed=seed, device=device, checkpoint=ckpt, until=until,
                           progress=False, precision=precision, checkpoint_every=0)
                wall = time.perf_counter() - t0
                state = method.state_dict()
                vals = {}
                for n in names:
                    m = built[n]
                    if m is not method:
                        m.load_state_dict(state)
                        m.to(device)
                    vals[n] = _val_psnr(m.denoise, d)
                    f = frontier[n]
                    f["step"].append(hist.steps)
                    f["seconds"].append(hist.seconds)
                    f["wall"].append(wall)
                    f["val_psnr"].append(vals[n])
                log(f"      step {hist.steps:>6}/{bud.steps}  train {hist.seconds:7.1f} s  validation "
                    + "  ".join(f"{n} {v:.2f} dB" for n, v in vals.items()))
        finally:
            ckpt.unlink(missing_ok=True)
        loss = [[r["step"], r["loss"]] for r in hist.log if "loss" in r]
        for n in names:
            m = built[n]
            ps, ss, secs = _score(m.denoise, d.test_noisy, d.test_clean)
            rows[n]["runs"].append({"seed": seed, "psnr": ps, "ssim": ss, "train_seconds": hist.seconds,
                                    "step_ms": 1000 * hist.seconds / max(hist.steps, 1), "bare_step_ms": bare, "test_seconds": secs,
                                    "frontier": frontier[n], "loss": loss})
        params = sum(p.numel() for p in method.parameters())
        for n in names:
            r = rows[n]
            r.update(steps=hist.steps, step_gflops=gflops, params=params, network=type(method.net).__name__,
                     cost_note=method.cost_note, test_images=len(d.test_clean),
                     note=f"trained on {method.describe_data()}" if n == first else
                     f"same trained network as {first} (differs only at inference)", group=first)
    for n in names:
        r = rows[n]
        runs = r["runs"]
        r["train_seconds"] = float(np.mean([x["train_seconds"] for x in runs]))
        r["step_ms"] = float(np.mean([x["step_ms"] for x in runs]))
        r["bare_step_ms"] = float(np.mean([x["bare_step_ms"] for x in runs]))
        r["test_seconds"] = float(sum(x["test_seconds"] for x in runs))
        r["val_psnr"] = float(np.mean([x["frontier"]["val_psnr"][-1] for x in runs]))
        _summarise(r, [x["psnr"] for x in runs], [x["ssim"] for x in runs])
    return rows


# ----------------------------------------------------------------------------------------------
# files


def _rank(name: str) -> tuple:
    known = bench.known_methods()
    return (_compare_index(name), known.index(name) if name in known else len(known), name)


def _compare_index(name: str) -> int:
    return COMPARED.index(name) if name in COMPARED else len(COMPARED)


def _write(path: Path, obj: dict) -> None:
    if "cells" in obj:
        obj["cells"] = {k: obj["cells"][k] for k in sorted(obj["cells"], key=_rank)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(bench._finite(obj), indent=1, allow_nan=False, default=str) + "\n")
    os.replace(tmp, path)


def _read(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def _groups(names: list[str]) -> list[list[str]]:
    """Names that share a training run (same :func:`methods.training_key`) in one group, in order."""
    groups, seen = [], {}
    for n in names:
        key = methods.training_key(n) if n in methods.available() else ("own", n)
        if key in seen:
            seen[key].append(n)
        else:
            seen[key] = [n]
            groups.append(seen[key])
    return groups


def run_configuration(config: Configuration, preset: Preset, out: str | Path, *, names: list[str] | None = None,
                      device=None, precision: str | None = None, work: str | Path | None = None, fresh: bool = False,
                      log=print, stop_after: int | None = None, options: dict | None = None) -> dict:
    """Run (or resume) one configuration; return its results dict (also written to ``out/<name>.json``).

    Args:
        names: the compared methods to run (default :data:`COMPARED`).
        work: folder for the temporary training checkpoints (default: the system's temp folder).
        fresh: discard an existing results file instead of resuming it.
        stop_after: test hook: raise ``KeyboardInterrupt`` after this many cells were measured in
            this call (as a Ctrl-C would).
        options: ``{method: {keyword: value}}`` for :func:`denoise_lib.methods.build` (e.g.
            ``{"noise2same": {"lambda_inv": 2.0}}``); part of the settings.

    Raises:
        SettingsMismatch: the existing file was made with other settings (nothing is run).
        ValueError / DataError: unknown method, bad noise or missing data.
    """
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work) if work is not None else Path(tempfile.gettempdir()) / "denoise_lib_compare"
    work.mkdir(parents=True, exist_ok=True)
    unknown = [n for n in (names or []) if n not in COMPARED]
    if unknown:
        raise ValueError(f"unknown or excluded method(s) {unknown}; compared: {', '.join(COMPARED)}")
    path = out / f"{config.name}.json"
    options = {k: dict(v) for k, v in (options or {}).items()}
    want = settings(config, preset, device=device, precision=precision, options=options)
    if path.is_file() and not fresh:
        res = _read(path)
        diff = _differences(res.get("settings", {}), want)
        if diff:
            raise SettingsMismatch(f"{path} was made with other settings; rerun with the same settings, use another "
                                   "--out folder, or --fresh to discard it:\n  " + "\n  ".join(diff))
    else:
        res = {"format": FORMAT, "configuration": config.name, "settings": want,
               "provenance": {"library": bench._library_version(), "library_source": want["library_source"],
                              "machine": machine(device), "created": _now()},
               "runs": [], "cells": {}}
    todo = plan(config, preset, names, options)
    for name, (status, reason) in todo.items():  # absent cells are listed with their reason
        if res["cells"].get(name, {}).get("status") != "done":
            if status == "run":
                status, reason = "pending", "not measured yet: the run was interrupted or is under way; rerun " \
                                            "the same command to resume"
            res["cells"][name] = {"method": name, "status": status, "reason": reason}
    run_rec = {"started": _now(), "machine": machine(device), "load_average_before": _load_avg(), "cells": []}
    res["runs"].append(run_rec)
    _write(path, res)
    order = [n for n in COMPARED if todo.get(n, ("", ""))[0] == "run"]
    pending = [g for g in _groups(order) if any(res["cells"].get(n, {}).get("status") != "done" for n in g)]
    done_before = [n for n in order if res["cells"].get(n, {}).get("status") == "done"]
    if done_before:
        log(f"{config.name}: resuming; {len(done_before)} finished cell(s) kept: {', '.join(done_before)}")
    if not pending:
        log(f"{config.name}: every cell is finished")
        run_rec.update(finished=_now(), wall_seconds=0.0, load_average_after=_load_avg())
        _write(path, res)
        return res
    need_train = any(g[0] in methods.available() and issubclass(methods.method_class(g[0]), methods.Method)
                     for g in pending)
    t_start = time.perf_counter()
    d = _load(config, preset, need_train)
    log(f"{config.name}: {parse_noise(config.noise).spec}, {len(d.test_clean)} test image(s) × {preset.draws} "
        f"draw(s), {len(d.train)} training image(s), {len(d.val_clean)} validation crop(s); "
        f"{len(pending)} cell(s) to run")
    measured = 0
    for k, group in enumerate(pending, 1):
        t0, load0, started = time.perf_counter(), _load_avg(), _now()
        log(f"[{config.name} {k}/{len(pending)}] {' + '.join(group)} …")
        name = group[0]
        if name == "noisy" or name in classical.CLASSICAL:
            rows = {name: _cell_reference(name, d, config, preset)}
        elif name in methods.available() and issubclass(methods.method_class(name), methods.PerImageMethod):
            rows = {name: _cell_dip(name, config, preset, d, device, options)}
        else:
            rows = _cell_trained(group, config, preset, d, device, work, precision, log, options)
        wall = time.perf_counter() - t0
        for n, row in rows.items():
            row["provenance"] = {"started": started, "wall_seconds": wall, "load_average_before": load0,
                                 "load_average_after": _load_avg(), "threads": torch.get_num_threads(),
                                 "run": len(res["runs"]) - 1}
            res["cells"][n] = row
        run_rec["cells"] += list(rows)
        _write(path, res)
        for n, row in rows.items():
            se = row["psnr"]["se"]
            log(f"[{config.name} {k}/{len(pending)}] {n:<12} PSNR {row['psnr']['mean']:6.2f}"
                + (f" ± {se:.2f}" if se is not None else "") + f" dB  SSIM {row['ssim']['mean']:.4f}  "
                f"cell {wall:6.1f} s  (elapsed {time.perf_counter() - t_start:7.1f} s)")
        measured += 1
        if stop_after is not None and measured >= stop_after:
            raise KeyboardInterrupt(f"stop_after={stop_after}")
    run_rec.update(finished=_now(), wall_seconds=time.perf_counter() - t_start, load_average_after=_load_avg())
    _write(path, res)
    return res


def run(configs: list[Configuration], preset: Preset, out: str | Path, *, log=print, **kwargs) -> dict[str, dict]:
    """Run (or resume) several configurations in turn; ``{name: results}``. See :func:`run_configuration`."""
    out_all, t0 = {}, time.perf_counter()
    for i, c in enumerate(configs, 1):
        log(f"== configuration {i}/{len(configs)}: {c.name} (elapsed {time.perf_counter() - t0:.0f} s)")
        out_all[c.name] = run_configuration(c, preset, out, log=log, **kwargs)
    log(f"== done: {len(configs)} configuration(s) in {time.perf_counter() - t0:.0f} s")
    return out_all


def load_results(folder: str | Path) -> dict[str, dict]:
    """Every results file of a folder, ``{configuration: results}``, in :data:`CONFIGURATIONS` order."""
    folder = Path(folder)
    found = {p.stem: _read(p) for p in sorted(folder.glob("*.json"))}
    order = [c.name for c in CONFIGURATIONS]
    return dict(sorted(found.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def stable_cells(res: dict) -> dict:
    """A file's cells without the fields that differ between runs (times, loads, dates): what a
    resumed run must reproduce exactly."""
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in VOLATILE}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o
    return strip(res["cells"])


# ----------------------------------------------------------------------------------------------
# estimate


def estimate(preset: Preset, timing: dict[str, dict], configs: list[Configuration] | None = None, *,
             scale: float | dict = 1.0) -> dict:
    """Projected seconds of a preset from a timing run (e.g. ``tiny``) on the same machine.

    Per method and channel count, the timing run gives the seconds of a training step (its
    measured mean), of the calibration, of a frontier point (per validation pixel), of a test
    image and of a DIP iteration; they are scaled to the preset's steps, images, draws, seeds
    and points. A configuration the timing run did not make is read from a timing
    configuration with the same channel count; a method it did not time for that channel
    count, from the other one, scaled by N2C's ratio of cell times between them. ``scale`` multiplies every time (e.g. the ratio
    of a quiet machine's step time to the timing run's, when the timing run was made under load).

    Returns:
        ``{"configurations": {name: seconds}, "total": seconds}``.
    """
    configs = CONFIGURATIONS if configs is None else configs
    by_channels: dict[int, dict] = {}
    for res in timing.values():
        ch = res["settings"]["configuration"]["channels"]
        for m, cell in res["cells"].items():
            if cell.get("status") == "done":
                by_channels.setdefault(ch, {}).setdefault(m, (cell, res["settings"]["preset"]))

    def ratio(ch: int, other: int, key) -> float:
        a, b = by_channels.get(ch, {}).get("n2c"), by_channels.get(other, {}).get("n2c")
        return key(a[0]) / key(b[0]) if a and b else 1.0

    out = {}
    for c in configs:
        total = 0.0
        for m, (status, _) in plan(c, preset).items():
            cell, tp = by_channels.get(c.channels, {}).get(m, (None, None))
            factor, src = 1.0, c.channels
            if cell is None and status == "run":   # from the other channel count, scaled by N2C's FLOP ratio
                src = 4 - c.channels
                cell, tp = by_channels.get(src, {}).get(m, (None, None))
                factor = ratio(c.channels, src, lambda x: x["step_gflops"])
            if status != "run" or cell is None:
                continue
            if isinstance(scale, dict):
                table = scale.get(src, {})
                factor *= table.get(m, table.get("*", 1.0))
            else:
                factor *= scale
            n_test = preset.test_images or 68
            evals = tp["draws"] * len(tp["seeds"])
            per_image = cell["test_seconds"] / max(1, cell["test_images"] * evals)
            if cell["kind"] == "trained":
                runs = len(preset.seeds)
                total += runs * per_image * n_test * preset.draws * factor
                if cell.get("group", m) != m:   # shares its group's training run
                    continue
                run0 = cell["runs"][0]
                step_s, bare_s = run0["step_ms"] / 1000, run0["bare_step_ms"] / 1000
                points = len(run0["frontier"]["step"])
                wall = cell["provenance"]["wall_seconds"] / max(1, len(tp["seeds"]))
                group_test = sum(x["runs"][0]["test_seconds"] for x in timing_cells(timing, src, m))
                fixed = (tp["calibration_steps"] + 3) * bare_s          # calibration, warm-up, FLOP count
                per_point = max(0.0, wall - step_s * run0["frontier"]["step"][-1] - group_test - fixed) / points
                pixels = (preset.val_images * preset.val_crop ** 2) / max(1, tp["val_images"] * tp["val_crop"] ** 2)
                total += factor * runs * (step_s * preset.steps + (preset.calibration_steps + 3) * bare_s
                                          + per_point * pixels * len(_chunks(preset.steps, preset.eval_every)))
            elif cell["kind"] == "per-image":
                per_it = float(np.mean([x["seconds_per_iteration"] for x in cell["dip_curves"]]))
                its = preset.dip_iterations or methods.build(m, channels=c.channels).iterations
                n = min(preset.dip_images or n_test, n_test)
                total += factor * per_it * its * n * preset.draws * len(preset.seeds)
            else:
                n = n_test
                if m == "bm3d" and c.channels == 3 and preset.bm3d_colour_images is not None:
                    n = min(n, preset.bm3d_colour_images)
                total += factor * per_image * n * preset.draws
        out[c.name] = total
    return {"configurations": out, "total": sum(out.values())}


def quiet_factors(timing: dict[str, dict], reference: dict) -> dict[int, dict[str, float]]:
    """Factors that turn the times of a timing run made under load into quiet-machine times.

    ``reference`` is a :mod:`denoise_lib.bench` result made on a quiet machine with the same
    batch shape on grey images (e.g. ``book/results/harness_set12_gaussian25_quick.json``).
    Grey cells: a trained method's factor is its quiet bare step time over the timing run's, a
    classical method's its quiet test seconds per image over the timing run's, and the others
    (``"*"``) get the median. Colour cells (no colour reference): one factor, N2C's quiet grey
    step time × the colour/grey ratio of its counted FLOPs, over the timing run's colour N2C step.

    Returns:
        ``{channels: {method or "*": factor}}``.
    """
    ref = {r["method"]: r for r in reference["results"]}
    ref_images = reference["config"]["test_images"] * reference["config"]["draws"]
    out: dict[int, dict[str, float]] = {1: {}, 3: {}}
    n2c = {}
    for res in timing.values():
        ch = res["settings"]["configuration"]["channels"]
        evals = res["settings"]["preset"]["draws"] * len(res["settings"]["preset"]["seeds"])
        if res["cells"].get("n2c", {}).get("status") == "done":
            n2c.setdefault(ch, res["cells"]["n2c"])
        if ch != 1:
            continue
        for m, c in res["cells"].items():
            r = ref.get(m)
            if c.get("status") != "done" or r is None or m in out[1]:
                continue
            if c["kind"] == "trained" and r.get("bare_step_ms"):
                out[1][m] = r["bare_step_ms"] / c["bare_step_ms"]
            elif c["kind"] == "classical" and r.get("test_seconds"):
                out[1][m] = (r["test_seconds"] / ref_images) / (c["test_seconds"] / max(1, c["test_images"] * evals))
    out[1]["*"] = float(np.median(list(out[1].values()))) if out[1] else 1.0
    if 3 in n2c and 1 in n2c and ref.get("n2c", {}).get("bare_step_ms"):
        flops = n2c[3]["step_gflops"] / n2c[1]["step_gflops"]
        out[3]["*"] = ref["n2c"]["bare_step_ms"] * flops / n2c[3]["bare_step_ms"]
    else:
        out[3]["*"] = out[1]["*"]
    return out


def timing_cells(timing: dict[str, dict], channels: int, group: str) -> list[dict]:
    """The cells of a timing run's first configuration with ``channels`` that belong to ``group``."""
    for res in timing.values():
        if res["settings"]["configuration"]["channels"] == channels:
            return [c for c in res["cells"].values() if c.get("status") == "done" and c.get("group") == group]
    return []


# ----------------------------------------------------------------------------------------------
# command line


def _select_configs(names: list[str] | None) -> list[Configuration]:
    if not names:
        return list(CONFIGURATIONS)
    known = {c.name: c for c in CONFIGURATIONS}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown configuration(s) {bad}; known: {', '.join(known)}")
    return [known[n] for n in names]


def parse_options(items: list[str]) -> dict[str, dict]:
    """``["noise2same.lambda_inv=2", …]`` → ``{"noise2same": {"lambda_inv": 2}}``; a value is read
    as JSON when it parses (numbers, true/false, lists), else kept as a string.

    Raises:
        ValueError: an item not of the form ``METHOD.KEY=VALUE``.
    """
    out: dict[str, dict] = {}
    for item in items:
        head, eq, value = item.partition("=")
        method, dot, key = head.partition(".")
        if not (eq and dot and method and key.isidentifier()):
            raise ValueError(f"--option {item!r}: expected METHOD.KEY=VALUE, e.g. noise2same.lambda_inv=2")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(method, {})[key] = parsed
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m denoise_lib.compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="presets: " + "; ".join(f"{k}: {v.note}" for k, v in PRESETS.items()))
    p.add_argument("--preset", choices=sorted(PRESETS), help="the budget (required to run or --list)")
    p.add_argument("--configs", nargs="+", metavar="NAME", help=f"default: all of {' '.join(c.name for c in CONFIGURATIONS)}")
    p.add_argument("--methods", nargs="+", metavar="NAME", help=f"default: all of {' '.join(COMPARED)}")
    p.add_argument("--option", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a constructor argument of one method, e.g. noise2same.lambda_inv=2 (repeatable; "
                        "recorded in the settings; use another --out folder than the default run's)")
    p.add_argument("--out", default=None, help="results folder (default book/results/compare/<preset>)")
    p.add_argument("--work", default=None, help="folder for temporary training checkpoints")
    p.add_argument("--device", default=None)
    p.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--fresh", action="store_true", help="discard existing results files of these configurations")
    p.add_argument("--list", action="store_true", help="print every cell's plan (run / why absent) and exit")
    p.add_argument("--estimate", metavar="PRESET", choices=sorted(PRESETS),
                   help="print the projected duration of PRESET from the timing run in --from, and exit")
    p.add_argument("--from", dest="timing", default=None, help="results folder of a timing run (for --estimate)")
    p.add_argument("--quiet-reference", default=None, metavar="JSON",
                   help="with --estimate: a bench result made on a quiet machine with the same batch shape; "
                        "corrects the timing run's times method by method (see quiet_factors)")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        configs = _select_configs(a.configs)
        if a.estimate:
            folder = Path(a.timing) if a.timing else DEFAULT_OUT / "tiny"
            timing = load_results(folder)
            if not timing:
                print(f"error: no results in {folder}; run a timing preset first", file=sys.stderr)
                return 2
            scale, why = 1.0, ""
            if a.quiet_reference:
                scale = quiet_factors(timing, _read(Path(a.quiet_reference)))
                why = (", corrected to a quiet machine by " + Path(a.quiet_reference).name + " (factors: grey "
                       + ", ".join(f"{k} {v:.2f}" for k, v in scale[1].items())
                       + f"; colour {scale[3]['*']:.2f})")
            est = estimate(PRESETS[a.estimate], timing, configs, scale=scale)
            for name, s in est["configurations"].items():
                print(f"{name:<22}{s / 60:8.1f} min")
            print(f"{'total':<22}{est['total'] / 60:8.1f} min  (from {folder}, made with "
                  f"{next(iter(timing.values()))['provenance']['machine']['threads']} thread(s){why})")
            return 0
        if not a.preset:
            p.error("--preset is required")
        preset = PRESETS[a.preset]
        options = parse_options(a.option)
        if a.list:
            for c in configs:
                print(c.name)
                for name, (status, reason) in plan(c, preset, a.methods, options).items():
                    print(f"  {name:<16}{status:<16}{reason}")
            return 0
        if a.threads:
            torch.set_num_threads(a.threads)
        out = Path(a.out) if a.out else DEFAULT_OUT / preset.name
        run(configs, preset, out, names=a.methods, device=a.device, precision=a.precision, work=a.work,
            fresh=a.fresh, options=options, log=lambda s: print(s, flush=True))
    except SettingsMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the finished cells are saved; run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError, data.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
