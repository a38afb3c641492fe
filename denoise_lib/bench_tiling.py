"""Benchmark of tiled inference: peak memory and throughput, tiled vs untiled (not a test).

    python -m denoise_lib.bench_tiling [--size 4000x3000] [--threads 2]
        [--methods n2c nb2nb laine19-pme] [--limit-gb 16]

Each case (method × tiled/untiled) runs in a fresh subprocess so that its peak resident
memory (``getrusage(RUSAGE_SELF).ru_maxrss``, which includes everything torch allocates)
is its own. The child builds the method with untrained, seeded weights (speed does not
depend on training), draws a gray noise image of the given size, and times one
``denoise`` (untiled) or :func:`~denoise_lib.tiling.denoise_tiled` call with the default,
exact settings. An address-space limit (``--limit-gb``) turns a case that does not fit
into an "out of memory" row instead of swapping or invoking the OOM killer.

Prints a Markdown table: peak RSS, the part of it above the set-up (libraries, network
and image: the cost of inference itself), wall time and megapixels per second.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

__all__ = ["main", "run_case"]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_case(method: str, mode: str, height: int, width: int, threads: int, laine19_patch: int) -> dict:
    """Run one case in this process; return its measurements (``ok``, ``seconds``, ``mpx_per_s``, RSS in MiB)."""
    import torch

    from . import methods
    from .tiling import denoise_tiled, tile_settings

    torch.set_num_threads(threads)
    kw = {"noise": "gaussian:25", "patch_size": laine19_patch} if method.startswith("laine19") else {}
    m = methods.build(method, 1, seed=0, **kw).eval()
    y = torch.rand(1, 1, height, width, generator=torch.Generator().manual_seed(0))
    setup = _rss_mib()
    info = {"method": method, "mode": mode, "size": f"{width}x{height}", "threads": threads,
            "depth": getattr(m.net, "depth", None), "setup_mib": setup}
    if mode == "tiled":
        info["tiling"] = tile_settings(m)
    t0 = time.perf_counter()
    try:
        out = denoise_tiled(m, y) if mode == "tiled" else m.denoise(y)
    except (RuntimeError, MemoryError) as e:
        return {**info, "ok": False, "error": str(e).splitlines()[0][:160], "peak_mib": _rss_mib()}
    dt = time.perf_counter() - t0
    assert out.shape == y.shape
    return {**info, "ok": True, "seconds": dt, "mpx_per_s": height * width / 1e6 / dt, "peak_mib": _rss_mib()}


def _child(args) -> dict:
    cmd = [sys.executable, "-m", "denoise_lib.bench_tiling", "--child", args.child_method, args.child_mode,
           "--size", args.size, "--threads", str(args.threads), "--laine19-patch", str(args.laine19_patch)]
    limit = int(args.limit_gb * 2 ** 30)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "DENOISE_PROGRESS": "0"}
    r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cap, env=env, timeout=args.timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return {"method": args.child_method, "mode": args.child_mode, "ok": False,
                "error": f"exit {r.returncode}: {tail}"}
    return json.loads(lines[-1])


def _table(rows: list[dict], limit_gb: float) -> str:
    out = ["| method | net depth | mode | peak RSS (MiB) | above set-up (MiB) | time (s) | Mpx/s |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        mode = r["mode"]
        if r.get("tiling"):
            t = r["tiling"]
            mode += f" ({t['tile']} px, overlap {t['overlap']})"
        if r["ok"]:
            out.append(f"| {r['method']} | {r['depth']} | {mode} | {r['peak_mib']:.0f} | "
                       f"{r['peak_mib'] - r['setup_mib']:.0f} | {r['seconds']:.1f} | {r['mpx_per_s']:.3f} |")
        else:
            err = r.get("error", "")
            oom = "alloc" in err.lower() or "memory" in err.lower()
            what = f"out of memory (> {limit_gb:g} GiB)" if oom else f"failed: {err}"
            out.append(f"| {r['method']} | {r.get('depth', '')} | {mode} | {what} | | | |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m denoise_lib.bench_tiling", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT of the gray test image")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=["n2c", "nb2nb", "laine19-pme"])
    p.add_argument("--modes", nargs="+", default=["untiled", "tiled"], choices=["untiled", "tiled"])
    p.add_argument("--laine19-patch", type=int, default=64,
                   help="training patch side the blind-spot network is sized for (64: depth 3, the quick "
                        "budget's network, as trained on a CPU; 128: depth 4, the full budget's)")
    p.add_argument("--limit-gb", type=float, default=16.0, help="address-space limit of each case")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per case")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--child", nargs=2, metavar=("METHOD", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        print(json.dumps(run_case(args.child[0], args.child[1], height, width, args.threads, args.laine19_patch)))
        return 0
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"# tiled vs untiled inference, {width}×{height} gray, {args.threads} threads, "
          f"{platform.processor() or platform.machine()}, load average at start {' '.join(load)}", flush=True)
    rows = []
    for method in args.methods:
        for mode in args.modes:
            args.child_method, args.child_mode = method, mode
            t0 = time.perf_counter()
            try:
                row = _child(args)
            except subprocess.TimeoutExpired:
                row = {"method": method, "mode": mode, "ok": False, "error": f"over {args.timeout:g} s"}
            rows.append(row)
            print(f"  {method} {mode}: {'ok' if row['ok'] else row['error']} ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
    print(_table(rows, args.limit_gb))
    with open("/proc/loadavg") as f:
        print(f"\nload average at end: {' '.join(f.read().split()[:3])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
