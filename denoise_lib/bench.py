"""The comparison harness: every method, same data, same noise, same budget.

Command line (the contract later chapters keep)::

    python -m denoise_lib.bench --methods noisy bm3d n2c n2n --train bsd400 --test set12 \\
        --noise gaussian:25 --budget 180 --seed 0 --json results.json

* ``--train`` / ``--test``: a registry name (:mod:`denoise_lib.data.registry`),
  ``skimage``/``skimage-gray``/``skimage-rgb``, or a folder of images. Training
  images are converted to the test set's channel count.
* ``--noise``: ``gaussian:SIGMA255``, ``gaussian:LO-HI``, ``poisson:LAMBDA`` or ``speckle:V``.
* ``--budget``: ``quick``, ``full``, ``smoke`` or seconds of training per learned method.

Protocol: the training noise is drawn once (fixed noisy training
set, identical noisy inputs for every learned method; N2C also sees the clean
images, N2N a second independent draw, self-supervised methods only the noisy
draw). Test noise is drawn with fixed seeds, ``--draws`` times (default 2 for sets
of fewer than 24 images, else 1), and PSNR/SSIM follow :mod:`denoise_lib.metrics`.
Classical methods get the true σ for fixed-σ Gaussian noise and estimate it otherwise.

Output: a table on stdout and, with ``--json``, ``{"config": {...}, "results":
[{"method", "psnr", "ssim", "train_seconds", "steps", "step_ms", ...}, ...]}``.
Extra keys per result: ``bare_step_ms`` (forward/backward/Adam on one fixed batch,
the reference for the loop's overhead), ``test_seconds``, ``params``, ``note``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

from . import classical, data, methods, metrics
from .noise import Gaussian, parse_noise
from .train import Budget, bare_step_ms, fit, resolve_device, resolve_precision, step_flops

__all__ = ["run", "main", "known_methods", "table", "markdown"]


def known_methods() -> list[str]:
    """Every name ``--methods`` accepts."""
    return ["noisy", *classical.CLASSICAL, *methods.available()]


def _evaluate(denoise, noisy_draws, clean) -> tuple[float, float, float]:
    ps, ss, t0 = [], [], time.perf_counter()
    for draw in noisy_draws:
        for y, x in zip(draw, clean):
            out = denoise(y)
            ps.append(metrics.psnr(out, x))
            ss.append(metrics.ssim(out, x))
    return float(np.mean(ps)), float(np.mean(ss)), time.perf_counter() - t0


def run(methods_: list[str], train: str, test: str, noise: str, budget="quick", *, seed: int = 0,
        draws: int | None = None, train_limit: int | None = None, test_limit: int | None = None,
        device=None, progress: bool = True, log=print, precision: str | None = None) -> dict:
    """Run the comparison and return the JSON-ready result dict (see the module docstring).

    Every learned method is built before anything trains, so a method that cannot take
    the noise or the data fails at once. Dispatch is on the method's type: a
    :class:`~denoise_lib.methods.base.Method` trains once on its own
    :meth:`~denoise_lib.methods.base.Method.training_set`; a
    :class:`~denoise_lib.methods.base.PerImageMethod` is fitted to each test image.
    torch's global RNG is neither read nor changed.

    Raises:
        ValueError: unknown method name, bad noise spec, budget or ``draws``, or a method
            that cannot be built for this noise.
        FileNotFoundError / DataError: data that cannot be found or verified.
    """
    unknown = [m for m in methods_ if m not in known_methods()]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {', '.join(known_methods())}")
    if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int) or draws < 1):
        raise ValueError(f"draws must be an integer ≥ 1, got {draws!r}")
    device = resolve_device(device)
    model = parse_noise(noise)
    bud = Budget.resolve(budget, device)
    clean = data.load(test, limit=test_limit)
    channels = int(clean[0].shape[1])
    if any(int(x.shape[1]) != channels for x in clean):
        clean = [x if x.shape[1] == 3 else x.expand(-1, 3, -1, -1) for x in clean]
        channels = 3
    learned = {}
    for name in methods_:
        if name in methods.available():
            try:
                learned[name] = methods.build(name, channels=channels, noise=model, patch_size=bud.patch_size,
                                              seed=seed)
            except ValueError as e:
                raise ValueError(f"{name} cannot run with noise {model.spec}: {e}") from e
    if draws is None:
        draws = 2 if len(clean) < 24 else 1
    noisy = [data.add_noise(clean, model, seed=10_000 + 97 * seed + d) for d in range(draws)]
    train_imgs = data.load(train, channels=channels, limit=train_limit) \
        if any(isinstance(m, methods.Method) for m in learned.values()) else []
    config = {"methods": list(methods_), "train": str(train), "test": str(test), "noise": model.spec,
              "budget": str(budget), "budget_resolved": {k: v for k, v in vars(bud).items()},
              "seed": seed, "draws": draws, "test_images": len(clean), "train_images": len(train_imgs),
              "channels": channels, "device": str(device), "torch": torch.__version__,
              "precision": resolve_precision(precision, device),
              "threads": torch.get_num_threads(), "platform": platform.platform(),
              "load_average_at_start": _load_average(), "library": _library_version()}
    known_sigma = model.sigma_range[0] if isinstance(model, Gaussian) and \
        model.sigma_range[0] == model.sigma_range[1] else None
    results, trained, ref = [], {}, None
    for name in methods_:
        row = {"method": name, "train_seconds": 0.0, "steps": 0, "step_ms": None}
        if name == "noisy":
            fn, row["note"] = (lambda y: y), "the noisy input itself"
        elif name in classical.CLASSICAL:
            f = classical.CLASSICAL[name]
            fn = lambda y, f=f: f(y, known_sigma)  # noqa: E731
            row["note"] = "σ known" if known_sigma is not None else "σ estimated per image (wavelet MAD)"
        else:
            method = learned[name]
            if isinstance(method, methods.PerImageMethod):
                if bud.name == "smoke" and hasattr(method, "iterations"):
                    method.iterations = int(bud.steps)
                row.update(params=sum(p.numel() for p in method.parameters()),
                           note=f"fitted to each test image for a fixed {getattr(method, 'iterations', '?')} "
                                f"iterations (its early stop would need the clean image); no training set, "
                                f"--budget does not apply; test s = fitting time")
                method.to(device)
            else:
                key = methods.training_key(name)
                if key in trained:
                    first, state, stats = trained[key]
                    method.load_state_dict(state)
                    method.to(device)
                    row.update(stats, note=f"same trained network as {first} (differs only at inference)")
                else:
                    train_set = type(method).training_set(train_imgs, model, seed=seed)
                    if ref is None:
                        ref = _n2c_reference(channels, train_imgs, model, bud, device, seed)
                    row["bare_step_ms"] = bare_step_ms(method, train_set, bud, device=device, seed=seed)
                    row["step_gflops"] = step_flops(method.cpu(), train_set, bud, seed=seed) / 1e9
                    hist = fit(method, train_set, bud, seed=seed, device=device, progress=progress,
                               precision=precision)
                    row.update(train_seconds=hist.seconds, steps=hist.steps, step_ms=hist.step_ms,
                               params=sum(p.numel() for p in method.parameters()),
                               flops_vs_n2c=row["step_gflops"] / ref["step_gflops"],
                               time_vs_n2c=row["bare_step_ms"] / ref["bare_step_ms"],
                               cost_note=method.cost_note,
                               note=f"trained on {method.describe_data()}")
                    stats = {k: row[k] for k in ("train_seconds", "steps", "step_ms", "params", "bare_step_ms",
                                                 "step_gflops", "flops_vs_n2c", "time_vs_n2c", "cost_note")}
                    trained[key] = (name, {k: v.detach().clone() for k, v in method.state_dict().items()}, stats)
            fn = method.denoise
        row["psnr"], row["ssim"], row["test_seconds"] = _evaluate(fn, noisy, clean)
        results.append(row)
        log(_format_row(row))
    return {"config": config, "results": results}


def _load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (how quiet the machine was), where the OS has them."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _library_version() -> dict:
    """The library version and, in a git checkout, the commit and whether the tree was clean."""
    from pathlib import Path

    from . import __version__

    out = {"version": __version__}
    root = Path(__file__).resolve().parents[1]
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                       timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--", "denoise_lib"], cwd=root,
                                capture_output=True, text=True, timeout=10).stdout
        out["library_modified"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _n2c_reference(channels, images, model, bud, device, seed) -> dict:
    """N2C's bare step time and FLOP count on the default U-Net: the unit of the cost ratios."""
    ref = methods.build("n2c", channels=channels, seed=seed)
    ts = ref.training_set(images, model, seed=seed)
    return {"step_gflops": step_flops(ref, ts, bud, seed=seed) / 1e9,
            "bare_step_ms": bare_step_ms(ref, ts, bud, device=device, seed=seed)}


def _format_row(r: dict) -> str:
    step = "" if r.get("step_ms") is None else f"{r['step_ms']:.0f}"
    bare = "" if r.get("bare_step_ms") is None else f"{r['bare_step_ms']:.0f}"
    fx = "" if r.get("flops_vs_n2c") is None else f"{r['flops_vs_n2c']:.2f}"
    tx = "" if r.get("time_vs_n2c") is None else f"{r['time_vs_n2c']:.2f}"
    return (f"{r['method']:<16}{r['psnr']:>8.2f}{r['ssim']:>8.4f}{r['train_seconds']:>9.1f}"
            f"{r['steps']:>7}{step:>9}{bare:>9}{fx:>7}{tx:>7}{r.get('test_seconds', 0):>8.1f}  {r.get('note', '')}")


HEADER = (f"{'method':<16}{'PSNR':>8}{'SSIM':>8}{'train s':>9}{'steps':>7}{'step ms':>9}"
          f"{'bare ms':>9}{'flop×':>7}{'time×':>7}{'test s':>8}  note")


def table(result: dict) -> str:
    """The result as a fixed-width text table."""
    lines = [HEADER, "-" * len(HEADER)] + [_format_row(r) for r in result["results"]]
    return "\n".join(lines + _cost_lines(result["results"]))


def markdown(result: dict) -> str:
    """The result as a Markdown table (as pasted into the README), with its run line."""
    cfg = result["config"]
    lines = ["| method | PSNR (dB) | SSIM | steps | train s | step ms | flop× | time× | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        num = lambda k, f: "" if r.get(k) is None else format(r[k], f)  # noqa: E731
        steps = r["steps"] or ""
        lines.append(f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {steps} | "
                     f"{num('train_seconds', '.0f') if r['steps'] else ''} | {num('step_ms', '.0f')} | "
                     f"{num('flops_vs_n2c', '.2f')} | {num('time_vs_n2c', '.2f')} | {r.get('note', '')} |")
    load = cfg.get("load_average_at_start")
    lines.append("")
    lines.append(f"{cfg['noise']}, trained on {cfg['train']} ({cfg['train_images']} images), tested on "
                 f"{cfg['test']} ({cfg['test_images']} images × {cfg['draws']} noise draws), budget "
                 f"{cfg['budget']}, device {cfg['device']}, {cfg['threads']} threads, torch {cfg['torch']}"
                 + (f", load average at the start {load[0]:.2f}" if load else "") + ".")
    return "\n".join(lines)


def _cost_lines(rows: list[dict]) -> list[str]:
    """The footnote explaining each learned method's expected cost against N2C."""
    notes = [f"  {r['method']}: {r['cost_note']}" for r in rows if r.get("cost_note")]
    if not notes:
        return []
    return ["", "flop× = counted FLOPs of one training step / N2C's on the same U-Net; time× = measured "
            "bare step time / N2C's. Expected cost:"] + notes


def _finite(o):
    """Replace NaN/inf floats by None so that the JSON is strict."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m denoise_lib.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", required=True, help=f"any of: {' '.join(known_methods())}")
    p.add_argument("--train", default="bsd400", help="registry name, skimage[-gray|-rgb] or folder")
    p.add_argument("--test", default="set12", help="registry name, skimage[-gray|-rgb] or folder")
    p.add_argument("--noise", default="gaussian:25",
                   help="gaussian:SIGMA255 | gaussian:LO-HI | poisson:LAMBDA | speckle:V")
    p.add_argument("--budget", default=None, help="quick | full | smoke | seconds per method "
                   "(default: $DENOISE_BUDGET, else full on CUDA, quick on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=None, help="test noise draws (default 2 below 24 images)")
    p.add_argument("--train-limit", type=int, default=None, help="use the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="use the first N test images")
    p.add_argument("--device", default=None)
    p.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16", "fp16"],
                   help="training precision (default auto: mixed on CUDA, fp32 on CPU)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--markdown", metavar="JSON", default=None,
                   help="print the Markdown table of a saved result and exit (no run)")
    if argv is None:
        argv = sys.argv[1:]
    if "--markdown" in argv:  # rendering a saved result needs no other argument
        i = argv.index("--markdown")
        if i + 1 >= len(argv):
            p.error("--markdown needs a JSON file")
        with open(argv[i + 1]) as f:
            print(markdown(json.load(f)))
        return 0
    a = p.parse_args(argv)
    if a.json:  # fail now, not after the whole run
        from pathlib import Path
        target = Path(a.json)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() or not os.access(target.parent, os.W_OK):
                raise OSError("not a writable file path")
        except OSError as e:
            print(f"error: cannot write --json {a.json}: {e}", file=sys.stderr)
            return 2
    try:
        print(HEADER, flush=True)
        res = run(a.methods, a.train, a.test, a.noise, a.budget, seed=a.seed, draws=a.draws,
                  train_limit=a.train_limit, test_limit=a.test_limit, device=a.device,
                  progress=not a.no_progress, log=lambda s: print(s, flush=True), precision=a.precision)
    except (ValueError, KeyError, FileNotFoundError, data.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = res["config"]
    print("\n".join(_cost_lines(res["results"])))
    print(f"\n{cfg['noise']}, train {cfg['train']} ({cfg['train_images']} images), test {cfg['test']} "
          f"({cfg['test_images']} images × {cfg['draws']} noise draws), budget {cfg['budget']}, "
          f"device {cfg['device']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(_finite(res), f, indent=2, allow_nan=False, default=str)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
